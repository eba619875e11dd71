/*
 * certtest.h — test certificates made with the openssl command into a temporary directory: a CA, a server
 * certificate for localhost / 127.0.0.1 (serverAuth) and a client certificate CN=client.test (clientAuth),
 * all P-256, valid two days. Header-only, for unit tests.
 */
#ifndef HIENODE_TESTS_CERTTEST_H
#define HIENODE_TESTS_CERTTEST_H

#include <stdio.h>
#include <stdlib.h>

struct certtest {
	char dir[64];
	char ca_pem[128], srv_pem[128], srv_key[128], cli_pem[128], cli_key[128];
};

/* prefix names the temporary directory (/tmp/<prefix>XXXXXX). Returns 0 on success. */
static inline int certtest_make(struct certtest *ct, const char *prefix)
{
	char cmd[4096];
	snprintf(ct->dir, sizeof ct->dir, "/tmp/%sXXXXXX", prefix);
	if (!mkdtemp(ct->dir))
		return -1;
	snprintf(cmd, sizeof cmd,
		 "set -e; cd %s; exec >/dev/null 2>&1;"
		 "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > srv.ext;"
		 "printf 'extendedKeyUsage=clientAuth\\n' > cli.ext;"
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem"
		 " -days 2 -subj /CN=TestCA -addext basicConstraints=critical,CA:TRUE"
		 " -addext keyUsage=critical,keyCertSign,cRLSign;"
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr"
		 " -subj /CN=localhost;"
		 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2"
		 " -extfile srv.ext;"
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout cli.key -out cli.csr"
		 " -subj /CN=client.test;"
		 "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cli.pem -days 2"
		 " -extfile cli.ext",
		 ct->dir);
	if (system(cmd) != 0)
		return -1;
	snprintf(ct->ca_pem, sizeof ct->ca_pem, "%s/ca.pem", ct->dir);
	snprintf(ct->srv_pem, sizeof ct->srv_pem, "%s/srv.pem", ct->dir);
	snprintf(ct->srv_key, sizeof ct->srv_key, "%s/srv.key", ct->dir);
	snprintf(ct->cli_pem, sizeof ct->cli_pem, "%s/cli.pem", ct->dir);
	snprintf(ct->cli_key, sizeof ct->cli_key, "%s/cli.key", ct->dir);
	return 0;
}

/* Removes the directory and everything in it. Returns 0 on success. */
static inline int certtest_remove(const struct certtest *ct)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", ct->dir);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
