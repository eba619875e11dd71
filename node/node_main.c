/*
 * node_main.c — main(): option parsing and dispatch to the subcommands of ARCHITECTURE.md "Interfaces".
 */
#include <stdio.h>
#include <string.h>

#include "node/node.h"

static const struct {
	const char *name;
	int (*fn)(const struct node_opts *);
	const char *usage;
} commands[] = {
	{"serve", node_cmd_serve, "run the node (embedded PostgreSQL unless [database] url is set)"},
	{"migrate", node_cmd_migrate, "apply database migrations and exit"},
	{"check-config", node_cmd_check_config, "validate the configuration and print what is wrong"},
	{"config", node_cmd_config, "--reference: every key with type, default, range and meaning; --example: a "
				    "documented example file; no flag: the effective values"},
	{"status", node_cmd_status, "queues by kind and state, failed jobs"},
	{"patient", node_cmd_patient, "add --id 'ID^^^&OID&ISO' [--family F --given G --birth-date YYYYMMDD "
				      "--gender M|F|O|U ...] | list [--limit N] | show --id ID: the patient index"},
	{"domain", node_cmd_domain, "add|list|remove DOMAIN, address add|list ADDR, policy PARTNER [--cipher C "
				    "--key-transport K --digest D]: our Direct domains and partner algorithms"},
	{"cert", node_cmd_cert, "import (--address A | --domain D) --cert FILE [--key FILE] [--usage U] | list | "
				"remove FINGERPRINT | discover ADDR: Direct certificates"},
	{"trust", node_cmd_trust, "add --domain D --anchor FILE [--direction incoming|outgoing|both] | list | remove | "
				  "bundle add --domain D --url URL [--signer FILE] [--refresh HOURS] | bundle list|refresh"},
	{"route", node_cmd_route, "add DOMAIN HOST:PORT | list | remove DOMAIN: next hop for a recipient domain"},
	{"send", node_cmd_send, "--from ADDR --to ADDR [--cc ADDR] --subject S [--body FILE] [--attach FILE]...: "
				"sign, encrypt and deliver a Direct message"},
	{"mailbox", node_cmd_mailbox, "list ADDR | get ADDR ID | ack ADDR ID: what arrived for a local Direct "
				      "address; ack = delivered to its final destination (sends the dispatched MDN "
				      "when the sender asked for it)"},
	{"user", node_cmd_user, "add NAME | passwd NAME | remove NAME | grant NAME ADDR | revoke NAME ADDR | list: "
				"edge users (SMTP submission, mailbox API, XDR); the password is read from the terminal "
				"or stdin"},
	{"forward", node_cmd_forward, "set ADDR smtp HOST:PORT [--tls none|opportunistic|required] | set ADDR xdr "
				      "URL [--metadata full|minimal] [--insecure-http] | list | remove ADDR | status "
				      "[ADDR]: push what arrives for ADDR to the practice's mail server or EHR"},
	{"bridge", node_cmd_bridge, "add ADDR|DOMAIN | list | remove X | parked | retry ID|--all: register "
				    "documents received over Direct in the local XDS registry"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: hienode [-c FILE] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].usage);
	fprintf(out, "\n-c FILE may also follow the command. HIENODE_<SECTION>_<KEY> overrides any key.\n");
}

int main(int argc, char **argv)
{
	struct node_opts o = {0};
	const char *cmd = NULL;
	char *rest[64];
	int nrest = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "hienode: %s needs a file\n", argv[i]);
				return 2;
			}
			o.config_path = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (!cmd) {
			cmd = argv[i];
		} else if (nrest < (int)(sizeof rest / sizeof rest[0])) {
			rest[nrest++] = argv[i];
		} else {
			fprintf(stderr, "hienode: too many arguments\n");
			return 2;
		}
	}
	if (!cmd) {
		usage(stderr);
		return 2;
	}
	o.argc = nrest;
	o.argv = rest;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return commands[i].fn(&o);
	fprintf(stderr, "hienode: unknown command '%s'\n\n", cmd);
	usage(stderr);
	return 2;
}
