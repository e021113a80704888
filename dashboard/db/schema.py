"""The dashboard's tables (SQLAlchemy Core), as the migrations create them.

What is stored, by kind: public keys and signed keyring entries (public), wrapped private
keys and sealed blobs (ciphertext), Argon2id hashes of the browser's auth keys, and the few
cleartext fields PROTOCOL.md names (message type, policy version, retention period, a
request's kind, the day of a summary). Nothing here opens a child's data. Times are integer
Unix seconds; byte strings that the API carries as base64url are stored as raw bytes.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

HEX16 = String(32)
# 64-bit row ids where clients page by id (SQLite's rowid alias must be spelled INTEGER)
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
HEX32 = String(64)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(32), primary_key=True),  # signing_key, token_key, vapid_key, decoy_key
    Column("value", LargeBinary, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, unique=True),  # lower-cased
    Column("kdf", Text, nullable=False),  # JSON, PROTOCOL.md §13
    Column("auth_hash", String(200), nullable=False),  # Argon2id of the browser's auth key
    Column("recovery_hash", String(200), nullable=False),  # Argon2id of recovery_auth
    Column("kid", HEX16, nullable=False, unique=True),
    Column("sign_pub", LargeBinary(32), nullable=False),
    Column("seal_pub", LargeBinary(32), nullable=False),
    Column("label", String(64), nullable=False),
    Column("wrapped_keys", Text, nullable=False),  # JSON {nonce, ct}
    Column("recovery_wrapped_keys", Text, nullable=False),
    Column("language", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

throttles = Table(  # login back-off and rate limits, shared by every server process
    "throttles",
    metadata,
    Column("key", String(96), primary_key=True),  # e.g. "login-account:<sha256>", "pair-global"
    Column("failures", Integer, nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("blocked_until", BigInteger, nullable=False),
)

families = Table(
    "families",
    metadata,
    Column("id", HEX16, primary_key=True),
    Column("head_seq", Integer, nullable=False),
    Column("head_hash", HEX32, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

keyring_entries = Table(
    "keyring_entries",
    metadata,
    Column("family_id", HEX16, ForeignKey("families.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("hash", HEX32, nullable=False),
    Column("envelope", Text, nullable=False),  # the envelope JSON, body bytes as received (b64)
    Column("added_at", BigInteger, nullable=False),
)

memberships = Table(  # which accounts are active guardians of which family (from the keyring)
    "memberships",
    metadata,
    Column("family_id", HEX16, ForeignKey("families.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("kid", HEX16, nullable=False),
    Column("since", BigInteger, nullable=False),
)

invitations = Table(
    "invitations",
    metadata,
    Column("id", HEX16, primary_key=True),
    Column("family_id", HEX16, ForeignKey("families.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_by", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # open | accepted | admitted | revoked
    Column("invitee_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE")),
    Column("invitee_kid", HEX16),
)

pairings = Table(
    "pairings",
    metadata,
    Column("id", HEX16, primary_key=True),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("code_hash", LargeBinary(32), nullable=False, index=True),
    Column("device_id", HEX16, nullable=False),
    Column("commitment", HEX32, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    # offered -> claimed -> responded -> revealed -> completed -> paired | aborted
    Column("state", String(16), nullable=False),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE")),
    Column("response", Text),
    Column("reveal", Text),
    Column("complete", Text),
    Column("complete_meta", Text),
    Column("consent_id", Integer),
    Column("reason", String(200)),
)

devices = Table(
    "devices",
    metadata,
    Column("id", HEX16, primary_key=True),
    Column("family_id", HEX16, ForeignKey("families.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("label", String(64), nullable=False),
    Column("sign_pub", LargeBinary(32), nullable=False),
    Column("seal_pub", LargeBinary(32), nullable=False),
    Column("status", String(16), nullable=False),  # active | unpairing | removed
    Column("paired_at", BigInteger, nullable=False),
    Column("last_contact", BigInteger),
    Column("reported_head", BigInteger, nullable=False, default=0),
    Column("epoch", HEX16, nullable=False),
    Column("base_seq", BigInteger, nullable=False, default=0),  # below this: purged or never held
    Column("base_hash", LargeBinary(32), nullable=False),
    Column("cursor", BigInteger, nullable=False, default=0),  # acknowledged (checkpoint-verified)
    Column("cursor_hash", LargeBinary(32), nullable=False),
    Column("pending_seq", BigInteger, nullable=False, default=0),  # held beyond the cursor
    Column("policy_seq", BigInteger, nullable=False, default=0),  # the highest version queued
    Column("retention_days", Integer, nullable=False, default=30),
    Column("applied_seq", BigInteger, nullable=False, default=0),  # from the device's signed acks
    Column("applied_at", BigInteger),
    Column("applied_by", HEX16),
)

consents = Table(
    "consents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("family_id", HEX16),  # null while pairing (the family may not exist yet)
    Column("device_id", HEX16, nullable=False, index=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("kid", HEX16, nullable=False),
    Column("version", String(32), nullable=False),
    Column("language", String(8), nullable=False),
    Column("accepted", Boolean, nullable=False),
    Column("usage_reports", Boolean, nullable=False),
    Column("push_notifications", Boolean, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("pairing_id", HEX16),
)

segments = Table(
    "journal_segments",
    metadata,
    Column("device_id", HEX16, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("uid", String(64), primary_key=True),
    Column("keys", Text, nullable=False),  # JSON [{recipient: hex, wrapped: b64}]
    Column("received_at", BigInteger, nullable=False),
)

records = Table(
    "journal_records",
    metadata,
    Column("device_id", HEX16, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("segment", String(64), nullable=False),
    Column("nonce", LargeBinary(12), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("received_at", BigInteger, nullable=False),
)

checkpoints = Table(
    "journal_checkpoints",
    metadata,
    Column("device_id", HEX16, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("head", LargeBinary(32), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)

summaries = Table(
    "summaries",
    metadata,
    Column("device_id", HEX16, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("sealed", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
)

child_requests = Table(
    "child_requests",
    metadata,
    Column("device_id", HEX16, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("id", HEX16, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("sealed", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("handled_at", BigInteger),
    Column("handled_by", HEX16),
)

catalogues = Table(
    "catalogues",
    metadata,
    Column("device_id", HEX16, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("sealed", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
)

messages = Table(  # the per-device queue of guardian messages, keyring entries and receipts
    "messages",
    metadata,
    Column("device_id", HEX16, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("id", HEX16, primary_key=True),
    Column("n", BigInteger, nullable=False),  # queue order within the device
    Column("type", String(16), nullable=False),  # policy|decision|consent|keyring|server_receipt
    Column("seq", BigInteger, nullable=False),
    Column("content", Text, nullable=False),  # sealed blob, keyring envelope or signed receipt (JSON)
    Column("retention_days", Integer),
    Column("sender", HEX16),  # the guardian key id of the account that queued it
    Column("queued_at", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # queued | applied | refused | duplicate
    Column("ack", Text),  # the device's signed ack envelope (JSON), as received
    Column("acked_at", BigInteger),
    Index("ix_messages_device_status_n", "device_id", "status", "n"),
)

device_receipts = Table(
    "device_receipts",
    metadata,
    Column("device_id", HEX16, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("id", HEX16, primary_key=True),
    Column("envelope", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
)

challenges = Table(
    "device_challenges",
    metadata,
    Column("nonce", LargeBinary(32), primary_key=True),
    Column("device_id", HEX16, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

events = Table(  # what the guardians' apps are told (cleartext metadata only); long-poll reads it
    "events",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("family_id", HEX16, nullable=False),
    Column("device_id", HEX16),
    Column("kind", String(16), nullable=False),  # request | ack | device | keyring | invitation
    Column("data", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
    Index("ix_events_family_id_id", "family_id", "id"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("family_id", HEX16, nullable=False, index=True),
    Column("device_id", HEX16),
    Column("account_id", Integer),
    Column("kid", HEX16),
    Column("action", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
)

webpush_subscriptions = Table(
    "webpush_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("endpoint", String(1024), nullable=False),
    Column("p256dh", LargeBinary(65), nullable=False),
    Column("auth", LargeBinary(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("endpoint"),
)
