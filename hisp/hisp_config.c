/*
 * hisp_config.c — configuration keys of the Direct HISP: SMTP listeners, algorithms, discovery, delivery.
 */
#include "hisp/hisp.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

static const char ciphers[] = "aes128-cbc|aes192-cbc|aes256-cbc|aes128-gcm|aes256-gcm";
static const char transports[] = "rsa-oaep-sha256|rsa-oaep-sha1|rsa-pkcs1";
static const char digests[] = "sha256|sha384|sha512";
static const char tls_modes[] = "none|opportunistic|required";

const struct hie_cfg_key hisp_config_keys[] = {
	{"smtp", "listen", HIE_CFG_ADDR, "127.0.0.1:2525", 0, 270,
	 "SMTP listener for Direct messages from other HISPs (port 25 in production); empty disables it", NULL},
	{"smtp", "max_message_size", HIE_CFG_SIZE, "64M", 1024, 1024LL * 1024 * 1024,
	 "largest message accepted (advertised as SIZE)", NULL},
	{"smtp", "max_recipients", HIE_CFG_INT, "100", 1, 10000, "RCPT TO commands accepted per message", NULL},
	{"smtp", "max_connections", HIE_CFG_INT, "200", 1, 100000, "concurrent SMTP connections", NULL},
	{"smtp", "command_timeout", HIE_CFG_DURATION, "5m", 1 * SEC, 1 * HOUR, "deadline for each SMTP command", NULL},
	{"smtp", "data_timeout", HIE_CFG_DURATION, "10m", 1 * SEC, 2 * HOUR, "deadline for a whole DATA phase", NULL},
	{"smtp", "tls_cert", HIE_CFG_STR, "", 0, 1024, "PEM certificate chain offered with STARTTLS; empty: no STARTTLS",
	 NULL},
	{"smtp", "tls_key", HIE_CFG_STR, "", 0, 1024, "PEM private key for STARTTLS", NULL},
	{"submission", "listen", HIE_CFG_ADDR, "127.0.0.1:2587", 0, 270,
	 "SMTP submission listener for edge clients (STARTTLS + AUTH); empty disables it", NULL},
	{"submission", "tls_cert", HIE_CFG_STR, "", 0, 1024,
	 "PEM certificate chain for STARTTLS on the submission port; empty: [smtp] tls_cert (AUTH needs one)", NULL},
	{"submission", "tls_key", HIE_CFG_STR, "", 0, 1024, "PEM private key for STARTTLS on the submission port", NULL},
	{"submission", "max_connections", HIE_CFG_INT, "50", 1, 10000, "concurrent submission connections", NULL},
	{"submission", "command_timeout", HIE_CFG_DURATION, "1m", 1 * SEC, 1 * HOUR,
	 "deadline for each submission command", NULL},
	{"edge", "auth_max_failures", HIE_CFG_INT, "5", 1, 1000,
	 "failed logins (SMTP AUTH, mailbox API, XDR) from one client address before it is locked out", NULL},
	{"edge", "auth_lockout", HIE_CFG_DURATION, "15m", 1 * SEC, 24 * HOUR,
	 "how long a client address stays locked out after too many failed logins", NULL},
	{"edge", "require_tls", HIE_CFG_BOOL, "true", 0, 0,
	 "the mailbox API and XDR refuse requests that did not come over HTTPS", NULL},
	{"edge", "xdr_timeout", HIE_CFG_DURATION, "30s", 1 * SEC, 10 * MIN, "deadline of one XDR forwarding request",
	 NULL},
	{"edge", "xdr_ca", HIE_CFG_STR, "", 0, 1024,
	 "PEM CA bundle that XDR forwarding endpoints' certificates must chain to; empty: the system's", NULL},
	{"edge", "forward_smtp_ca", HIE_CFG_STR, "", 0, 1024,
	 "PEM CA bundle for practice SMTP servers forwarded to with tls=required; empty: the system's", NULL},
	{"direct", "hostname", HIE_CFG_STR, "", 0, 255,
	 "host name in SMTP greetings, Message-IDs and Reporting-UA; empty: the system's", NULL},
	{"direct", "cipher", HIE_CFG_ENUM, "aes128-cbc", 0, 0,
	 "content encryption for messages we send (per partner domain: hienode domain policy)", ciphers},
	{"direct", "key_transport", HIE_CFG_ENUM, "rsa-oaep-sha256", 0, 0, "RSA key transport for messages we send",
	 transports},
	{"direct", "digest", HIE_CFG_ENUM, "sha256", 0, 0, "signature digest for messages we send", digests},
	{"direct", "min_rsa_bits", HIE_CFG_INT, "2048", 1024, 16384, "smallest RSA key accepted in a certificate", NULL},
	{"direct", "allow_sha1_certs", HIE_CFG_BOOL, "false", 0, 0,
	 "accept certificates signed with SHA-1 (test only: old reference-implementation material)", NULL},
	{"direct", "mdn_timeout", HIE_CFG_DURATION, "1h", 1 * SEC, 7 * 24 * HOUR,
	 "a recipient without the MDN we wait for after this long gets one failure DSN to our sender", NULL},
	{"direct", "smarthost", HIE_CFG_ADDR, "", 0, 270,
	 "next hop for every recipient domain without a route (e.g. Postfix); empty: the domain's MX", NULL},
	{"direct", "smtp_timeout", HIE_CFG_DURATION, "5m", 1 * SEC, 1 * HOUR, "deadline for each outbound SMTP phase",
	 NULL},
	{"direct", "smtp_tls", HIE_CFG_ENUM, "opportunistic", 0, 0, "STARTTLS towards the next hop", tls_modes},
	{"direct", "dns_server", HIE_CFG_ADDR, "", 0, 270,
	 "DNS server for CERT, SRV and MX lookups (host:port); empty: /etc/resolv.conf", NULL},
	{"direct", "dns_timeout", HIE_CFG_DURATION, "5s", 100, 60 * SEC, "deadline of one DNS query", NULL},
	{"direct", "ldap_timeout", HIE_CFG_DURATION, "5s", 100, 60 * SEC, "deadline of one LDAP server", NULL},
	{"direct", "fetch_timeout", HIE_CFG_DURATION, "10s", 100, 5 * MIN,
	 "deadline of one HTTP download (CRL, AIA issuer, IPKIX certificate, trust bundle)", NULL},
	{"direct", "cert_cache_ttl", HIE_CFG_DURATION, "1h", 0, 7 * 24 * HOUR,
	 "how long certificate discovery results are kept (0: not cached)", NULL},
};
const size_t hisp_config_nkeys = sizeof hisp_config_keys / sizeof hisp_config_keys[0];
