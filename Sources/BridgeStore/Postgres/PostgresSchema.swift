import Foundation
import Logging
import PostgresNIO

/// Migrations of the PostgreSQL database, like GRDB's migrator: a named, append-only list,
/// never edited once shipped. `schema_migrations` records the names applied; the pending ones
/// run in one transaction, under an advisory lock so two workers starting at once do not race.
///
/// Every per-device table has `device_id` first in its primary key (the queries of a handle
/// all filter on it) and references `device(id)` with `ON DELETE CASCADE`: deleting the
/// registry row removes everything of the device at once.
enum PostgresSchema {
    struct Migration: Sendable {
        var name: String
        var statements: [String]
    }

    static let migrations: [Migration] = [
        Migration(name: "v1-registry", statements: [
            """
            CREATE TABLE device (
                id text PRIMARY KEY,
                jid text,
                lid text,
                push_name text NOT NULL DEFAULT '',
                state text NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                settings text NOT NULL DEFAULT '{}',
                created_seq bigserial NOT NULL
            )
            """,
            "CREATE INDEX device_on_jid ON device (jid)",
            // The registry's outbox outlives devices: no reference to `device`.
            """
            CREATE TABLE registry_outbox (
                sequence bigserial PRIMARY KEY,
                event_id text NOT NULL UNIQUE,
                device_id text NOT NULL,
                routing_key text NOT NULL,
                payload bytea NOT NULL,
                created_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX registry_outbox_on_device_id ON registry_outbox (device_id)",
        ]),
        Migration(name: "v2-device-keys", statements: [
            // How the device's key material is stored (`encryption` none | aes-256-gcm) and a
            // known value sealed with the device key (see `SessionKeyCheck`).
            """
            CREATE TABLE key_meta (
                device_id text PRIMARY KEY REFERENCES device(id) ON DELETE CASCADE,
                encryption text NOT NULL,
                key_check bytea NOT NULL
            )
            """,
            """
            CREATE TABLE account (
                device_id text PRIMARY KEY REFERENCES device(id) ON DELETE CASCADE,
                noise_key_blob bytea NOT NULL,
                identity_key_blob bytea NOT NULL,
                registration_id bigint NOT NULL,
                signed_pre_key_id bigint NOT NULL,
                signed_pre_key_blob bytea NOT NULL,
                signed_pre_key_signature bytea NOT NULL,
                adv_secret_blob bytea NOT NULL,
                account bytea,
                jid text,
                lid text,
                push_name text NOT NULL,
                platform text NOT NULL,
                business_name text NOT NULL
            )
            """,
            """
            CREATE TABLE identity (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                address text NOT NULL,
                public_key bytea NOT NULL,
                PRIMARY KEY (device_id, address)
            )
            """,
            """
            CREATE TABLE pre_key (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                id bigint NOT NULL,
                record_blob bytea NOT NULL,
                PRIMARY KEY (device_id, id)
            )
            """,
            """
            CREATE TABLE pre_key_counter (
                device_id text PRIMARY KEY REFERENCES device(id) ON DELETE CASCADE,
                next_id bigint NOT NULL
            )
            """,
            """
            CREATE TABLE signed_pre_key (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                id bigint NOT NULL,
                record_blob bytea NOT NULL,
                PRIMARY KEY (device_id, id)
            )
            """,
            """
            CREATE TABLE session (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                address text NOT NULL,
                record_blob bytea NOT NULL,
                PRIMARY KEY (device_id, address)
            )
            """,
            """
            CREATE TABLE sender_key (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                group_id text NOT NULL,
                sender text NOT NULL,
                record_blob bytea NOT NULL,
                PRIMARY KEY (device_id, group_id, sender)
            )
            """,
            // `seq` orders plaintexts stored in the same instant (SQLite's rowid); a replace takes a new one.
            """
            CREATE TABLE pending_plaintext (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                stanza text NOT NULL,
                part text NOT NULL,
                plaintext_blob bytea NOT NULL,
                stored_at double precision NOT NULL,
                seq bigserial NOT NULL,
                PRIMARY KEY (device_id, stanza, part)
            )
            """,
            "CREATE INDEX pending_plaintext_on_stored_at ON pending_plaintext (device_id, stored_at)",
            """
            CREATE TABLE lid_mapping (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                lid_user text NOT NULL,
                pn_user text NOT NULL,
                PRIMARY KEY (device_id, lid_user),
                UNIQUE (device_id, pn_user)
            )
            """,
            """
            CREATE TABLE privacy_token (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                "user" text NOT NULL,
                token_blob bytea,
                timestamp bigint NOT NULL,
                sender_timestamp bigint,
                PRIMARY KEY (device_id, "user")
            )
            """,
            """
            CREATE TABLE nct_salt (
                device_id text PRIMARY KEY REFERENCES device(id) ON DELETE CASCADE,
                salt_blob bytea NOT NULL
            )
            """,
            """
            CREATE TABLE app_state_sync_key (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                key_id bytea NOT NULL,
                key_blob bytea NOT NULL,
                fingerprint bytea NOT NULL,
                timestamp bigint NOT NULL,
                PRIMARY KEY (device_id, key_id)
            )
            """,
            """
            CREATE TABLE app_state_version (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                collection text NOT NULL,
                version bigint NOT NULL,
                hash bytea NOT NULL,
                PRIMARY KEY (device_id, collection)
            )
            """,
            """
            CREATE TABLE app_state_mutation_mac (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                collection text NOT NULL,
                index_mac bytea NOT NULL,
                value_mac bytea NOT NULL,
                PRIMARY KEY (device_id, collection, index_mac)
            )
            """,
            """
            CREATE TABLE app_state_contact (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                jid text NOT NULL,
                name_blob bytea NOT NULL,
                PRIMARY KEY (device_id, jid)
            )
            """,
            """
            CREATE TABLE app_state_chat (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                jid text NOT NULL,
                muted_until double precision,
                pinned boolean NOT NULL DEFAULT false,
                archived boolean NOT NULL DEFAULT false,
                PRIMARY KEY (device_id, jid)
            )
            """,
            """
            CREATE TABLE app_state_setting (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                name text NOT NULL,
                value_blob bytea NOT NULL,
                PRIMARY KEY (device_id, name)
            )
            """,
        ]),
        Migration(name: "v3-device-data", statements: [
            """
            CREATE TABLE message (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                chat text NOT NULL,
                id text NOT NULL,
                sender text NOT NULL,
                direction text NOT NULL,
                timestamp bigint NOT NULL,
                kind text NOT NULL,
                status text NOT NULL,
                body text NOT NULL DEFAULT '{}',
                historical boolean NOT NULL DEFAULT false,
                PRIMARY KEY (device_id, chat, id)
            )
            """,
            "CREATE INDEX message_on_chat_timestamp ON message (device_id, chat, timestamp)",
            "CREATE INDEX message_historical_on_timestamp ON message (device_id, historical, timestamp)",
            // One sequence for every device's outbox: it orders each device's events, which is all the publisher needs.
            """
            CREATE TABLE outbox (
                sequence bigserial PRIMARY KEY,
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                event_id text NOT NULL,
                routing_key text NOT NULL,
                payload bytea NOT NULL,
                created_at timestamptz NOT NULL,
                UNIQUE (device_id, event_id)
            )
            """,
            "CREATE INDEX outbox_on_device_sequence ON outbox (device_id, sequence)",
            """
            CREATE TABLE published_event (
                rank bigserial PRIMARY KEY,
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                event_id text NOT NULL,
                published_at timestamptz NOT NULL,
                UNIQUE (device_id, event_id)
            )
            """,
            "CREATE INDEX published_event_on_device_rank ON published_event (device_id, rank)",
            """
            CREATE TABLE idempotency (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                command_id text NOT NULL,
                message_id text,
                result text NOT NULL,
                created_at timestamptz NOT NULL,
                correlation_id text,
                PRIMARY KEY (device_id, command_id)
            )
            """,
            "CREATE INDEX idempotency_on_message_id ON idempotency (device_id, message_id)",
            """
            CREATE TABLE conversation (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                chat text NOT NULL,
                chat_lid text,
                name text,
                last_message_at bigint,
                unread_count bigint NOT NULL DEFAULT 0,
                updated_at timestamptz NOT NULL,
                PRIMARY KEY (device_id, chat)
            )
            """,
            """
            CREATE TABLE push_name (
                device_id text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
                jid text NOT NULL,
                name text NOT NULL,
                updated_at timestamptz NOT NULL,
                PRIMARY KEY (device_id, jid)
            )
            """,
        ]),
        // The fence of each device (`BridgeStore.raiseFence`): a key write through a handle of an
        // older generation is refused. The row exists from the device's creation, so a writer's
        // `FOR SHARE` read always has a row to lock against a concurrent raise.
        Migration(name: "v4-device-fence", statements: [
            """
            CREATE TABLE device_fence (
                device_id text PRIMARY KEY REFERENCES device(id) ON DELETE CASCADE,
                fence bigint NOT NULL DEFAULT 0
            )
            """,
            "INSERT INTO device_fence (device_id) SELECT id FROM device ON CONFLICT DO NOTHING",
        ]),
        // Device leases and worker heartbeats (`LeaseStoring`), times in seconds since 1970 by the
        // database's clock. A lease row outlives its release so the generation only grows.
        Migration(name: "v5-leases", statements: [
            """
            CREATE TABLE lease (
                device_id text PRIMARY KEY REFERENCES device(id) ON DELETE CASCADE,
                owner text NOT NULL,
                generation bigint NOT NULL,
                expires_at double precision NOT NULL
            )
            """,
            "CREATE INDEX lease_on_owner ON lease (owner)",
            """
            CREATE TABLE worker (
                id text PRIMARY KEY,
                expires_at double precision NOT NULL,
                draining boolean NOT NULL DEFAULT false
            )
            """,
        ]),
    ]

    /// Applies the migrations not yet recorded, in order.
    static func migrate(_ database: PostgresDatabase) async throws(StoreError) {
        let logger = database.logger
        try await database.write("migrate") { connection in
            // One worker migrates at a time; the lock ends with the transaction.
            try await connection.run("SELECT pg_advisory_xact_lock(7305157243419476)", logger)
            try await connection.run("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
                """, logger)
            let applied = Set(try await connection.rows("SELECT name FROM schema_migrations", logger).map { try $0.decode(String.self) })
            for migration in migrations where !applied.contains(migration.name) {
                for statement in migration.statements {
                    try await connection.run(PostgresQuery(unsafeSQL: statement), logger)
                }
                try await connection.run("INSERT INTO schema_migrations (name) VALUES (\(migration.name))", logger)
                logger.info("applied a PostgreSQL migration", metadata: ["migration": "\(migration.name)"])
            }
        }
    }
}
