/*
 * core_err.c — messages for hie_err_t (one table, like curl's lib/strerror.c).
 */
#include "core/core_err.h"

static const struct {
	const char *name;
	const char *msg;
} err_table[HIE_ERR__COUNT] = {
	[HIE_OK] = {"OK", "no error"},
	[HIE_ENOMEM] = {"ENOMEM", "out of memory"},
	[HIE_EINVAL] = {"EINVAL", "invalid argument"},
	[HIE_ETOOBIG] = {"ETOOBIG", "limit exceeded"},
	[HIE_ETIMEOUT] = {"ETIMEOUT", "deadline exceeded"},
	[HIE_EIO] = {"EIO", "input/output error"},
	[HIE_EPARSE] = {"EPARSE", "malformed input"},
	[HIE_EDB] = {"EDB", "database error"},
	[HIE_ENOTFOUND] = {"ENOTFOUND", "not found"},
	[HIE_ECONFIG] = {"ECONFIG", "configuration error"},
	[HIE_ETLS] = {"ETLS", "TLS or cryptographic error"},
	[HIE_EPROTO] = {"EPROTO", "protocol error"},
	[HIE_EDENIED] = {"EDENIED", "permission denied"},
	[HIE_EEXIST] = {"EEXIST", "already exists"},
	[HIE_ECLOSED] = {"ECLOSED", "connection closed by peer"},
	[HIE_EBUSY] = {"EBUSY", "resource busy"},
	[HIE_EUNSUPPORTED] = {"EUNSUPPORTED", "not supported"},
	[HIE_ESYS] = {"ESYS", "system call failed"},
	[HIE_EPERMANENT] = {"EPERMANENT", "permanent failure"},
};

const char *hie_strerror(hie_err_t err)
{
	if ((unsigned)err >= HIE_ERR__COUNT)
		return "unknown error";
	return err_table[err].msg;
}

const char *hie_errname(hie_err_t err)
{
	if ((unsigned)err >= HIE_ERR__COUNT)
		return "EUNKNOWN";
	return err_table[err].name;
}
