#!/usr/bin/python3
"""The old Flask backend's database, written as it wrote it: SQLAlchemy models of its tables
(users, cameras, recordings), bcrypt password hashes, camera URLs as Fernet tokens keyed from
SECRET_KEY. tests/flask_import.rs imports what this writes.

Usage: fixture.py <postgres url>  < spec.json   (prints {"secret_key": ..., "fernet_key": ...})

spec: {"secret_key": str | null (null: a new Fernet key is the SECRET_KEY),
       "users": [{"username", "password", "role", "prefix": "2a"|"2b"|"2y"}],
       "cameras": [{"ip", "name", "type", "brand", "channel", "port", "url" | "token", "user"}],
       "recordings": [{"camera_ip", "user", "start", "end", "file_path", "duration_sec"}]}
Times are ISO 8601 in UTC, stored as `timestamp without time zone` (SQLAlchemy's default).
"""
import base64
import datetime
import hashlib
import json
import sys

import bcrypt
from cryptography.fernet import Fernet
from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Enum, Float, ForeignKey,
                        Integer, String, Text, create_engine)
from sqlalchemy.orm import declarative_base, sessionmaker

Base = declarative_base()


class User(Base):
    __tablename__ = "users"
    id = Column(Integer, primary_key=True)
    username = Column(String(80), unique=True, nullable=False)
    password_hash = Column(String(128), nullable=False)
    role = Column(Enum("admin", "user", "viewer", name="user_role"), nullable=False,
                  default="user")
    created_at = Column(DateTime, default=datetime.datetime.utcnow)


class Camera(Base):
    __tablename__ = "cameras"
    id = Column(Integer, primary_key=True)
    ip = Column(String(45), unique=True, nullable=False)
    name = Column(String(100))
    type = Column(String(20))
    brand = Column(String(20), default="generic")
    channel = Column(Integer, default=1)
    port = Column(Integer, default=554)
    is_active = Column(Boolean, default=True)
    last_seen = Column(DateTime)
    is_recording = Column(Boolean, default=False)
    rtsp_url_encrypted = Column(Text)
    hls_url = Column(String(255))
    user_id = Column(Integer, ForeignKey("users.id"), nullable=True)
    # a column the import does not know: it must be ignored
    notes = Column(Text, default="installed by the old backend")


class Recording(Base):
    __tablename__ = "recordings"
    id = Column(Integer, primary_key=True)
    camera_ip = Column(String(45), nullable=False)
    user_id = Column(Integer, ForeignKey("users.id"))
    start_time = Column(DateTime, nullable=False)
    end_time = Column(DateTime)
    file_path = Column(String(512), nullable=False)
    duration_sec = Column(Float)
    file_size = Column(BigInteger)


def fernet_key(secret):
    """The old backend's key: SECRET_KEY itself when it is a Fernet key, else the common
    derivation, url-safe base64 of SHA-256 of it."""
    try:
        Fernet(secret)
        return secret
    except Exception:
        return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()).decode()


def utc(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "")) if s else None


def main():
    url = sys.argv[1].replace("postgres://", "postgresql://", 1)
    spec = json.load(sys.stdin)
    secret = spec.get("secret_key") or Fernet.generate_key().decode()
    key = fernet_key(secret)
    f = Fernet(key.encode())
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    db = sessionmaker(bind=engine)()
    users = {}
    for u in spec.get("users", []):
        h = bcrypt.hashpw(u["password"].encode(), bcrypt.gensalt(rounds=4)).decode()
        h = "$" + u.get("prefix", "2b") + h[3:]
        row = User(username=u["username"], password_hash=h, role=u["role"])
        db.add(row)
        db.flush()
        users[u["username"]] = row.id
    for c in spec.get("cameras", []):
        token = c.get("token") or f.encrypt(c["url"].encode()).decode()
        db.add(Camera(ip=c["ip"], name=c.get("name"), type=c.get("type"),
                      brand=c.get("brand", "generic"), channel=c.get("channel", 1),
                      port=c.get("port", 554), rtsp_url_encrypted=token,
                      user_id=users.get(c.get("user")),
                      last_seen=datetime.datetime.utcnow()))
    for r in spec.get("recordings", []):
        path = r["file_path"]
        db.add(Recording(camera_ip=r["camera_ip"], user_id=users.get(r.get("user")),
                         start_time=utc(r["start"]), end_time=utc(r.get("end")),
                         file_path=path, duration_sec=r.get("duration_sec"),
                         file_size=r.get("file_size")))
    db.commit()
    print(json.dumps({"secret_key": secret, "fernet_key": key}))


if __name__ == "__main__":
    main()
