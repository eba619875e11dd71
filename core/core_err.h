/*
 * core_err.h — the project-wide error code.
 *
 * Every function that can fail returns hie_err_t; 0 is success. Library errors (libpq, OpenSSL, libxml2,
 * libcurl) are converted at the module boundary and their own message is logged there. hie_strerror()
 * returns a static string for any value, including out-of-range ones.
 */
#ifndef HIENODE_CORE_ERR_H
#define HIENODE_CORE_ERR_H

typedef enum hie_err {
	HIE_OK = 0,
	HIE_ENOMEM,       /* allocation failed */
	HIE_EINVAL,       /* invalid argument or value */
	HIE_ETOOBIG,      /* a cap was exceeded (buffer, depth, count, size) */
	HIE_ETIMEOUT,     /* a deadline passed */
	HIE_EIO,          /* I/O error on a file or socket */
	HIE_EPARSE,       /* malformed input from a peer */
	HIE_EDB,          /* the database failed or refused */
	HIE_ENOTFOUND,    /* the thing asked for does not exist */
	HIE_ECONFIG,      /* bad configuration */
	HIE_ETLS,         /* TLS or cryptographic failure */
	HIE_EPROTO,       /* protocol violation by a peer */
	HIE_EDENIED,      /* not permitted */
	HIE_EEXIST,       /* already exists */
	HIE_ECLOSED,      /* the peer closed the connection */
	HIE_EBUSY,        /* resource exhausted for now; retry later */
	HIE_EUNSUPPORTED, /* valid but not supported */
	HIE_ESYS,         /* a system call failed (errno is logged) */
	HIE_EPERMANENT,   /* a job failed in a way no retry can fix */
	HIE_ERR__COUNT
} hie_err_t;

/* Static message for an error code; never NULL. */
const char *hie_strerror(hie_err_t err);

/* The short symbolic name ("ETOOBIG") for logs; never NULL. */
const char *hie_errname(hie_err_t err);

#endif
