-- vigia schema 5: recordings copied from the old Flask backend (`vigia store import-flask`)
-- have the status 'imported'.

ALTER TABLE recordings DROP CONSTRAINT recordings_status_check;
ALTER TABLE recordings ADD CONSTRAINT recordings_status_check
    CHECK (status IN ('recording', 'completed', 'stopped', 'recovered', 'missing', 'imported'));
