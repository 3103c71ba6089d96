-- vigia schema 6: a camera's `type`, the old Flask backend's free-text field ("ip", "dvr",
-- …). Cameras from before it get the value a new one gets when none is given.

ALTER TABLE cameras ADD COLUMN kind TEXT NOT NULL DEFAULT 'ip';
UPDATE cameras SET kind = 'dvr' WHERE channel > 1;
ALTER TABLE cameras ALTER COLUMN kind DROP DEFAULT;
