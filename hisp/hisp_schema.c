/*
 * hisp_schema.c — the Direct HISP's tables (module "hisp" migrations).
 *
 * Addresses are stored lower-cased (Direct addresses compare case-insensitively; hisp_addr_normalize).
 *   hisp_domains        our Direct domains (RCPT for a domain not listed is relayed nowhere: 550)
 *   hisp_addresses      our Direct addresses (RCPT for an unknown local address: 550)
 *   hisp_certs          certificates: ours (key_file set, the key lives under <state_dir>/keys) and partners'
 *                       known locally (key_file NULL); owner is an address or a domain (bound)
 *   hisp_anchors        trust anchors per local domain and direction; bundle_id set when a bundle brought it
 *   hisp_bundles        trust bundles per local domain, refreshed by hisp.bundle jobs
 *   hisp_policies       per partner domain sending algorithms (NULL column = the [direct] default)
 *   hisp_routes         next hop per recipient domain (before MX lookup and smarthost)
 *   hisp_cert_cache     certificate discovery results per address or domain, with expiry (negative too)
 *   hisp_crl_cache      downloaded CRLs by distribution point URL
 *   hisp_inbound        raw messages accepted by SMTP (250 only after this row commits) and their outcome
 *   hisp_mailbox        what arrived for a local address (decrypted message), and notices to our senders
 *   hisp_outbound       messages we send (plain RFC 5322 before signing), MDNs and DSNs we send
 *   hisp_outbound_rcpt  per recipient state: pending → sent → processed → dispatched | failed | timeout
 * Edge (migration 3):
 *   hisp_users          edge users (SMTP submission, mailbox API, XDR): name = a Direct address, lower-cased;
 *                       pw_hash = libsodium crypto_pwhash_str (Argon2id, salted), never the password
 *   hisp_user_addresses the Direct addresses a user may send as and read the mailbox of
 *   hisp_forwards       per local address: push received messages to the practice's SMTP server or XDR endpoint
 *   hisp_forward_state  per mailbox item forwarded: pending → delivered | failed (with the reason)
 *   hisp_bridges        push-to-pull: local addresses or domains whose received documents are registered
 *   hisp_bridge_docs    per received document: registered (uniqueId) | parked (reason, for an operator) | failed
 */
#include "hisp/hisp.h"

static const char m1_sql[] =
	"CREATE TABLE hisp_domains ("
	" name text PRIMARY KEY CHECK (name = lower(name) AND name <> ''),"
	" created_at timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE hisp_addresses ("
	" address text PRIMARY KEY CHECK (address = lower(address) AND position('@' in address) > 1),"
	" domain text NOT NULL REFERENCES hisp_domains(name) ON DELETE CASCADE,"
	" created_at timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE hisp_certs ("
	" id bigserial PRIMARY KEY,"
	" owner text NOT NULL CHECK (owner = lower(owner)),"
	" bound text NOT NULL CHECK (bound IN ('address', 'domain')),"
	" usage text NOT NULL CHECK (usage IN ('sign', 'encrypt', 'both')),"
	" der bytea NOT NULL,"
	" fingerprint text NOT NULL UNIQUE,"          /* SHA-256 of the DER, hex */
	" key_file text,"                              /* ours: file name under <state_dir>/keys; partner: NULL */
	" not_before timestamptz NOT NULL,"
	" not_after timestamptz NOT NULL,"
	" created_at timestamptz NOT NULL DEFAULT now());"
	"CREATE INDEX hisp_certs_owner ON hisp_certs (owner);"
	"CREATE TABLE hisp_bundles ("
	" id bigserial PRIMARY KEY,"
	" domain text NOT NULL REFERENCES hisp_domains(name) ON DELETE CASCADE,"
	" url text NOT NULL,"
	" signer_der bytea,"
	" direction text NOT NULL DEFAULT 'both' CHECK (direction IN ('incoming', 'outgoing', 'both')),"
	" refresh_hours int NOT NULL DEFAULT 24 CHECK (refresh_hours > 0),"
	" last_fetch timestamptz, last_ok timestamptz, last_error text, anchors int NOT NULL DEFAULT 0,"
	" UNIQUE (domain, url));"
	"CREATE TABLE hisp_anchors ("
	" id bigserial PRIMARY KEY,"
	" domain text NOT NULL REFERENCES hisp_domains(name) ON DELETE CASCADE,"
	" direction text NOT NULL CHECK (direction IN ('incoming', 'outgoing', 'both')),"
	" der bytea NOT NULL,"
	" fingerprint text NOT NULL,"
	" subject text NOT NULL,"
	" bundle_id bigint REFERENCES hisp_bundles(id) ON DELETE CASCADE,"
	" created_at timestamptz NOT NULL DEFAULT now());"
	"CREATE UNIQUE INDEX hisp_anchors_unique ON hisp_anchors (domain, fingerprint, direction, coalesce(bundle_id, 0));"
	"CREATE TABLE hisp_policies ("
	" domain text PRIMARY KEY CHECK (domain = lower(domain)),"
	" cipher text, key_transport text, digest text);"
	"CREATE TABLE hisp_routes ("
	" domain text PRIMARY KEY CHECK (domain = lower(domain)),"
	" host text NOT NULL, port int NOT NULL CHECK (port BETWEEN 1 AND 65535));"
	"CREATE TABLE hisp_cert_cache ("
	" subject text PRIMARY KEY,"                   /* address or domain looked up */
	" ders bytea[] NOT NULL,"                      /* empty array = nothing found */
	" source text NOT NULL,"                       /* dns, ldap, none */
	" expires_at timestamptz NOT NULL);"
	"CREATE TABLE hisp_crl_cache ("
	" url text PRIMARY KEY, der bytea NOT NULL, next_update timestamptz, fetched_at timestamptz NOT NULL);"
	"CREATE TABLE hisp_inbound ("
	" id bigserial PRIMARY KEY,"
	" received_at timestamptz NOT NULL DEFAULT now(),"
	" peer text NOT NULL,"
	" helo text NOT NULL DEFAULT '',"
	" mail_from text NOT NULL,"
	" rcpt_to text[] NOT NULL,"
	" raw bytea NOT NULL,"
	" state text NOT NULL DEFAULT 'received' CHECK (state IN ('received', 'delivered', 'quarantined', 'notice')),"
	" reason text,"                                /* why quarantined: a short code and text, never content */
	" message_id text,"                            /* of the decrypted inner message, once known */
	" processed_at timestamptz);"
	"CREATE INDEX hisp_inbound_state ON hisp_inbound (state) WHERE state <> 'delivered';"
	"CREATE TABLE hisp_outbound ("
	" id bigserial PRIMARY KEY,"
	" message_id text NOT NULL UNIQUE,"            /* without angle brackets */
	" kind text NOT NULL CHECK (kind IN ('message', 'mdn', 'dsn')),"
	" sender text NOT NULL,"
	" raw bytea NOT NULL,"                         /* the plain RFC 5322 message before signing */
	" want_final boolean NOT NULL DEFAULT false,"   /* asked X-DIRECT-FINAL-DESTINATION-DELIVERY */
	" created_at timestamptz NOT NULL DEFAULT now(),"
	" deadline timestamptz);"                       /* MDN timeout (messages only) */
	"CREATE TABLE hisp_outbound_rcpt ("
	" outbound_id bigint NOT NULL REFERENCES hisp_outbound(id) ON DELETE CASCADE,"
	" address text NOT NULL,"
	" state text NOT NULL DEFAULT 'pending' CHECK (state IN"
	"  ('pending', 'sent', 'processed', 'dispatched', 'failed', 'timeout')),"
	" reason text,"
	" attempts int NOT NULL DEFAULT 0,"
	" notified boolean NOT NULL DEFAULT false,"     /* the one final notice reached our sender */
	" updated_at timestamptz NOT NULL DEFAULT now(),"
	" PRIMARY KEY (outbound_id, address));"
	"CREATE INDEX hisp_outbound_rcpt_open ON hisp_outbound_rcpt (state) WHERE state IN ('pending', 'sent', 'processed');"
	"CREATE TABLE hisp_mailbox ("
	" id bigserial PRIMARY KEY,"
	" address text NOT NULL,"
	" kind text NOT NULL CHECK (kind IN ('message', 'mdn', 'dsn')),"
	" inbound_id bigint REFERENCES hisp_inbound(id) ON DELETE SET NULL,"
	" message_id text,"
	" content bytea NOT NULL,"                     /* the decrypted, verified RFC 5322 message */
	" received_at timestamptz NOT NULL DEFAULT now(),"
	" acked_at timestamptz,"
	" UNIQUE (address, inbound_id));"
	"CREATE INDEX hisp_mailbox_address ON hisp_mailbox (address, id);";

/*
 * Messages are already compressed-looking (base64 of ciphertext) or soon read whole: stored out of line without
 * pglz, which cost PostgreSQL more CPU than any other step of receiving a message and saved about a quarter.
 */
static const char m2_sql[] = "ALTER TABLE hisp_inbound ALTER COLUMN raw SET STORAGE EXTERNAL;"
			     "ALTER TABLE hisp_mailbox ALTER COLUMN content SET STORAGE EXTERNAL;"
			     "ALTER TABLE hisp_outbound ALTER COLUMN raw SET STORAGE EXTERNAL;";

static const char m3_sql[] =
	"CREATE TABLE hisp_users ("
	" name text PRIMARY KEY CHECK (name = lower(name) AND name <> ''),"
	" pw_hash text NOT NULL,"
	" disabled boolean NOT NULL DEFAULT false,"
	" created_at timestamptz NOT NULL DEFAULT now(),"
	" updated_at timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE hisp_user_addresses ("
	" name text NOT NULL REFERENCES hisp_users(name) ON DELETE CASCADE,"
	" address text NOT NULL CHECK (address = lower(address) AND position('@' in address) > 1),"
	" PRIMARY KEY (name, address));"
	"CREATE INDEX hisp_user_addresses_address ON hisp_user_addresses (address);"
	"CREATE TABLE hisp_forwards ("
	" address text PRIMARY KEY CHECK (address = lower(address)),"
	" kind text NOT NULL CHECK (kind IN ('smtp', 'xdr')),"
	" target text NOT NULL,"                       /* smtp: host:port; xdr: https URL */
	" tls text NOT NULL DEFAULT 'required' CHECK (tls IN ('none', 'opportunistic', 'required')),"
	" metadata text NOT NULL DEFAULT 'full' CHECK (metadata IN ('full', 'minimal')),"
	" created_at timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE hisp_forward_state ("
	" mailbox_id bigint PRIMARY KEY REFERENCES hisp_mailbox(id) ON DELETE CASCADE,"
	" state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),"
	" kind text NOT NULL, target text NOT NULL,"
	" attempts int NOT NULL DEFAULT 0,"
	" reason text,"
	" updated_at timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE hisp_bridges ("
	" subject text PRIMARY KEY CHECK (subject = lower(subject) AND subject <> ''),"   /* address or domain */
	" created_at timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE hisp_bridge_docs ("
	" id bigserial PRIMARY KEY,"
	" mailbox_id bigint NOT NULL REFERENCES hisp_mailbox(id) ON DELETE CASCADE,"
	" part text NOT NULL,"                         /* which document of the message: attachment or XDM path */
	" state text NOT NULL CHECK (state IN ('registered', 'parked', 'failed')),"
	" unique_id text,"                             /* DocumentEntry uniqueId once registered */
	" reason text,"                                /* why parked or failed: short, never content */
	" updated_at timestamptz NOT NULL DEFAULT now(),"
	" UNIQUE (mailbox_id, part));"
	"CREATE INDEX hisp_bridge_docs_open ON hisp_bridge_docs (state) WHERE state <> 'registered';";

const struct hie_db_migration hisp_migrations[] = {
	{"hisp", 1, "direct domains, certificates, trust, messages", m1_sql},
	{"hisp", 2, "message bytes stored without compression", m2_sql},
	{"hisp", 3, "edge: users, forwarding, push-to-pull bridge", m3_sql},
};
const size_t hisp_migrations_count = sizeof hisp_migrations / sizeof hisp_migrations[0];
