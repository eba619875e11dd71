/*
 * notify_schema.c — the notify module's numbered migrations (module "notify"), applied by node/ after the
 * registry's through hie_db_migrate().
 *
 *   1  hl7_messages: the HL7 v2 messages accepted, keyed by (sending application, sending facility, message
 *      control id) as sent in MSH-3, MSH-4, MSH-10, so that a retransmission is acknowledged again without
 *      being processed twice. Written in the same transaction as the change the message caused.
 */
#include "notify/notify.h"

const struct hie_db_migration notify_migrations[] = {
	{"notify", 1, "HL7 v2 message control ids",
	 "CREATE TABLE hl7_messages ("
	 " sending_app text NOT NULL,"
	 " sending_facility text NOT NULL,"
	 " control_id text NOT NULL CHECK (control_id <> ''),"
	 " received_at timestamptz NOT NULL DEFAULT now(),"
	 " ack_code text NOT NULL CHECK (ack_code IN ('AA', 'AE', 'AR')),"
	 " PRIMARY KEY (sending_app, sending_facility, control_id));"
	 /* For a retention sweep by age. */
	 "CREATE INDEX hl7_messages_received_at ON hl7_messages (received_at);"},
};
const size_t notify_migrations_count = sizeof notify_migrations / sizeof notify_migrations[0];
