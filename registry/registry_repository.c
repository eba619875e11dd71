/*
 * registry_repository.c — the XDS.b repository's SOAP door: ITI-41 Provide and Register Document Set-b here,
 * ITI-43 Retrieve Document Set in registry_repository_retrieve.c.
 *
 * ITI-41 (ITI TF-2b 3.41.4.1.3, STANDARDS.md §2): the body is an xdsb:ProvideAndRegisterDocumentSetRequest
 * holding an lcm:SubmitObjectsRequest and the xdsb:Document elements, each sent inline as base64 or as an
 * xop:Include naming an MTOM part (read in place, not copied). Every DocumentEntry needs a Document
 * (XDSMissingDocument) and every Document a DocumentEntry (XDSMissingDocumentMetadata). The repository
 * computes SHA-1 and size; a supplied value that differs is XDSRepositoryMetadataError naming the attribute
 * and both values. It then sets hash, size and repositoryUniqueId on the DocumentEntry and registers the
 * submission exactly as ITI-42 would (registry_register_submission), storing the bytes in repo_documents
 * inside that same transaction: metadata and content commit together or not at all. That second half,
 * registry_repository_register, is shared with the push-to-pull bridge (registry_import.c).
 *
 * A request that is not this transaction's message at all is a Sender fault; anything else is answered with
 * an rs:RegistryResponse (Failure with the RegistryErrorList). Nothing of a document, and no patient data,
 * is logged.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/tree.h>
#include <openssl/evp.h>

#include "core/core_db.h"
#include "core/core_digest.h"
#include "core/core_log.h"
#include "registry/registry_ebrim.h"
#include "registry/registry_register.h"
#include "registry/registry_repository.h"
#include "registry/registry_soap.h"

/* One xdsb:Document of the request; its bytes and DocumentEntry are rd[i] of struct pnr (same index). */
struct pnr_doc {
	char *id;                        /* @id (xmlFree) */
	const xmlNode *node;
	bool is_inline;
	size_t off;                      /* inline: offset of the bytes in the scratch buffer */
};

struct pnr {
	struct registry_service *svc;
	struct pnr_doc *docs;
	struct registry_repo_doc *rd;    /* data/len (MTOM part or scratch), de, and what registration fills */
	size_t ndocs;
	size_t bytes;
};

/* What registry_register_submission's in_tx stores. */
struct repo_store {
	const struct registry_service *svc;
	const struct registry_repo_doc *docs;
	size_t ndocs;
};

/* Reads one xdsb:Document: its id and its bytes (errors a peer can cause become entries of r). */
static hie_err_t read_document(const struct hie_soap_msg *req, const xmlNode *el, struct pnr_doc *d,
			       struct registry_repo_doc *rd, struct hie_buf *scratch, struct registry_response *r)
{
	d->node = el;
	d->id = (char *)xmlGetNoNsProp(el, BAD_CAST "id");
	if (!d->id || !d->id[0])
		return registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_METADATA, NULL,
					     "an xdsb:Document has no id attribute");
	d->is_inline = hie_xml_child(el, HIE_XOP_NS, "Include") == NULL;
	d->off = scratch->len;
	hie_err_t err = hie_soap_binary(req, el, &rd->data, &rd->len, scratch);
	switch (err) {
	case HIE_OK:
		return HIE_OK;
	case HIE_ENOTFOUND:
		return registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_MISSING_DOCUMENT, d->id,
					     req->mtom ? "Document '%s': its xop:Include names no MIME part of the package"
						       : "Document '%s': xop:Include in a message that is not MTOM",
					     d->id);
	case HIE_EPARSE:
		return registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_METADATA, d->id,
					     "Document '%s': content is neither valid base64 nor an xop:Include with "
					     "an href",
					     d->id);
	case HIE_ETOOBIG:
		return registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_OUT_OF_RESOURCES, d->id,
					     "Document '%s': inline documents exceed %u bytes in total; send them as "
					     "MTOM",
					     d->id,
					     REPO_MAX_INLINE_BYTES);
	default:
		return err;
	}
}

static hie_err_t read_documents(const struct hie_soap_msg *req, struct pnr *p, struct hie_buf *scratch,
				struct registry_response *r)
{
	size_t n = 0;
	const xmlNode *el;
	HIE_XML_FOREACH(el, req->payload, REGISTRY_NS_XDSB, "Document")
		n++;
	if (n > REPO_MAX_DOCUMENTS)
		return registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_OUT_OF_RESOURCES, NULL,
					     "%zu documents in one submission; at most %u", n, REPO_MAX_DOCUMENTS);
	p->docs = n ? calloc(n, sizeof *p->docs) : NULL;
	p->rd = n ? calloc(n, sizeof *p->rd) : NULL;
	if (n && (!p->docs || !p->rd))
		return HIE_ENOMEM;
	hie_err_t err = HIE_OK;
	HIE_XML_FOREACH(el, req->payload, REGISTRY_NS_XDSB, "Document") {
		err = read_document(req, el, &p->docs[p->ndocs], &p->rd[p->ndocs], scratch, r);
		p->ndocs++;
		if (err)
			return err;
	}
	/* Inline bytes were appended to scratch, which may have moved since: point at them only now. */
	for (size_t i = 0; i < p->ndocs; i++) {
		struct registry_repo_doc *rd = &p->rd[i];
		if (p->docs[i].is_inline && rd->data)
			rd->data = scratch->data ? scratch->data + p->docs[i].off : "";
		p->bytes += rd->len;
	}
	return HIE_OK;
}

static int cmp_doc_id(const void *a, const void *b)
{
	const struct pnr_doc *x = *(const struct pnr_doc *const *)a, *y = *(const struct pnr_doc *const *)b;
	return strcmp(x->id ? x->id : "", y->id ? y->id : "");
}

/* Pairs Documents with DocumentEntries by id (ITI TF-2b 3.41.4.1.3: Document/@id = the entry's id). */
static hie_err_t match(struct registry_ebrim_submission *s, struct pnr *p, struct registry_response *r)
{
	hie_err_t err = HIE_OK;
	struct pnr_doc **sorted = p->ndocs ? calloc(p->ndocs, sizeof *sorted) : NULL;
	bool *has_doc = s->nobjs ? calloc(s->nobjs, sizeof *has_doc) : NULL;
	if ((p->ndocs && !sorted) || (s->nobjs && !has_doc)) {
		err = HIE_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < p->ndocs; i++)
		sorted[i] = &p->docs[i];
	if (p->ndocs > 1)
		qsort(sorted, p->ndocs, sizeof *sorted, cmp_doc_id);
	for (size_t i = 0; i < p->ndocs && !err; i++) {
		struct pnr_doc *d = sorted[i];
		if (i && strcmp(sorted[i - 1]->id, d->id) == 0) {
			if (i < 2 || strcmp(sorted[i - 2]->id, d->id) != 0)
				err = registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_METADATA, d->id,
							    "Document id '%s' is used more than once", d->id);
			continue;
		}
		const struct registry_ebrim_obj *o = NULL;
		registry_ebrim_find(s, d->id, &o);
		if (!o || o->kind != REGISTRY_EBRIM_EXTRINSIC) {
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_MISSING_METADATA, d->id,
						    "Document '%s' has no DocumentEntry (ExtrinsicObject) with that "
						    "id in the submission",
						    d->id);
			continue;
		}
		size_t k = (size_t)(o - s->objs);
		has_doc[k] = true;
		p->rd[d - p->docs].de = &s->objs[k];
	}
	for (size_t i = 0; i < s->ndocs && !err; i++) {
		const struct registry_ebrim_doc *e = &s->docs[i];
		if (e->on_demand || has_doc[e->obj - s->objs])
			continue;
		err = registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_MISSING_DOCUMENT, e->obj->id,
					    "DocumentEntry '%s' (uniqueId '%s') has no xdsb:Document in the request",
					    e->obj->id ? e->obj->id : "", e->unique_id ? e->unique_id : "");
	}
out:
	free(sorted);
	free(has_doc);
	return err;
}

/* A supplied size equals len: decimal digits only, same value. */
static bool size_matches(const char *v, size_t len)
{
	if (!v || !*v)
		return false;
	for (const char *c = v; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	errno = 0;
	char *end;
	unsigned long long x = strtoull(v, &end, 10);
	return errno == 0 && *end == '\0' && x == (unsigned long long)len;
}

static const char *slot_value(const struct registry_ebrim_obj *o, const char *name)
{
	const struct registry_ebrim_slot *sl = registry_ebrim_slot(o, name);
	return sl && sl->nvalues ? sl->values[0] : NULL;
}

/*
 * Computes hash and size, compares them with what the source supplied (ITI TF-3 4.2.3.2.18/.19: the
 * repository's values are authoritative; a source that sends different ones has metadata that does not
 * describe its document), then writes them and our repositoryUniqueId into the DocumentEntries.
 */
static hie_err_t check_and_set(const struct registry_service *svc, struct registry_ebrim_submission *s,
			       struct registry_repo_doc *docs, size_t ndocs, struct registry_response *r)
{
	hie_err_t err = HIE_OK;
	for (size_t i = 0; i < ndocs && !err; i++) {
		struct registry_repo_doc *d = &docs[i];
		err = hie_digest_sha1_hex(d->data, d->len, d->hash);
		if (err)
			break;
		snprintf(d->size, sizeof d->size, "%zu", d->len);
		/* ITI-41 pairs a Document with the DocumentEntry of the same id: the entry's id names both. */
		const char *id = d->de->id ? d->de->id : "";
		const char *hash = slot_value(d->de, "hash"), *size = slot_value(d->de, "size");
		if (hash && strcasecmp(hash, d->hash) != 0)
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_METADATA, d->de->id,
						    "DocumentEntry '%s' hash: supplied '%s', computed by the "
						    "repository '%s'",
						    id, hash, d->hash);
		if (!err && size && !size_matches(size, d->len))
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_METADATA, d->de->id,
						    "DocumentEntry '%s' size: supplied '%s', computed by the "
						    "repository '%s'",
						    id, size, d->size);
	}
	for (size_t i = 0; i < ndocs && !err && !r->nerrors; i++) {
		struct registry_repo_doc *d = &docs[i];
		err = registry_ebrim_set_slot(s, d->de, "hash", d->hash);
		if (!err)
			err = registry_ebrim_set_slot(s, d->de, "size", d->size);
		if (!err)
			err = registry_ebrim_set_slot(s, d->de, "repositoryUniqueId", svc->repository_uid);
	}
	if (err == HIE_ETOOBIG)
		err = registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_OUT_OF_RESOURCES, NULL,
					    "the submission exceeds the repository's limits");
	return err;
}

/*
 * registry_register_submission's in_tx: the bytes, in the registration's transaction. Idempotent (the
 * transaction may be run again, and a uniqueId already stored with the same hash and size is the same
 * document): ON CONFLICT DO NOTHING. Content goes as a binary parameter, never as hex or escaped text.
 */
static hie_err_t store_documents(PGconn *tx, const struct registry_ebrim_submission *s, struct registry_response *r,
				 void *arg)
{
	static const char sql[] =
		"INSERT INTO repo_documents (unique_id, repository_unique_id, mime_type, hash, size, content)"
		" VALUES ($1, $2, $3, $4, $5::bigint, $6::bytea) ON CONFLICT (unique_id) DO NOTHING";
	const struct repo_store *p = arg;
	(void)s;
	(void)r; /* a failure here rolls back; registration reports XDSRepositoryError */
	for (size_t i = 0; i < p->ndocs; i++) {
		const struct registry_repo_doc *d = &p->docs[i];
		if (!d->unique_id || d->len > (size_t)INT_MAX)
			return HIE_EINVAL;
		const char *v[] = {d->unique_id, p->svc->repository_uid, d->mime_type ? d->mime_type : "", d->hash,
				   d->size, d->data};
		const int lens[] = {0, 0, 0, 0, 0, (int)d->len};
		const int fmts[] = {0, 0, 0, 0, 0, 1};
		hie_err_t err = hie_db_exec_bin(tx, sql, 6, v, lens, fmts, 0, NULL);
		if (err)
			return err;
	}
	return HIE_OK;
}

hie_err_t registry_repository_register(struct registry_service *svc, struct registry_ebrim_submission *s,
				       struct registry_repo_doc *docs, size_t ndocs, struct registry_response *r)
{
	/* uniqueId and mimeType now: they live in s's arena, which outlives the view rebuilds to come. */
	for (size_t i = 0; i < ndocs; i++) {
		struct registry_repo_doc *d = &docs[i];
		d->unique_id = NULL;
		for (size_t k = 0; k < s->ndocs; k++)
			if (s->docs[k].obj == d->de) {
				d->unique_id = s->docs[k].unique_id;
				break;
			}
		d->mime_type = d->de->mime_type;
	}
	hie_err_t err = check_and_set(svc, s, docs, ndocs, r);
	if (err || r->nerrors)
		return err;
	const struct repo_store st = {.svc = svc, .docs = docs, .ndocs = ndocs};
	const struct registry_register_opts opts = {
		.provide_and_register = true, .in_tx = store_documents, .in_tx_arg = (void *)&st};
	return registry_register_submission(svc->pool, s, &opts, r);
}

static void free_pnr(struct pnr *p)
{
	for (size_t i = 0; i < p->ndocs; i++)
		xmlFree(p->docs[i].id);
	free(p->docs);
	free(p->rd);
}

hie_err_t registry_provide_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	struct registry_service *svc = arg;
	if (!hie_xml_is(req->payload, REGISTRY_NS_XDSB, "ProvideAndRegisterDocumentSetRequest"))
		return registry_soap_sender_fault(
			resp, "the body of ITI-41 must be an xdsb:ProvideAndRegisterDocumentSetRequest");
	const xmlNode *sor = hie_xml_child(req->payload, REGISTRY_NS_LCM, "SubmitObjectsRequest");
	if (!sor)
		return registry_soap_sender_fault(
			resp, "xdsb:ProvideAndRegisterDocumentSetRequest must hold an lcm:SubmitObjectsRequest");

	struct registry_response r;
	struct hie_buf scratch;
	struct pnr p = {.svc = svc};
	struct registry_ebrim_submission *s = NULL;
	registry_response_init(&r, 0);
	hie_buf_init(&scratch, REPO_MAX_INLINE_BYTES);
	hie_err_t err = registry_ebrim_parse(sor, &s);
	if (err == HIE_EPARSE)
		err = registry_response_add(&r, REGISTRY_SEV_ERROR, REGISTRY_ERR_METADATA, NULL,
					    "SubmitObjectsRequest: no rim:RegistryObjectList");
	else if (err == HIE_ETOOBIG)
		err = registry_response_add(&r, REGISTRY_SEV_ERROR, REPO_ERR_OUT_OF_RESOURCES, NULL,
					    "the submission exceeds %u registry objects or its size limits",
					    REGISTRY_EBRIM_MAX_OBJECTS);
	if (!err && s)
		err = read_documents(req, &p, &scratch, &r);
	if (!err && s && !r.nerrors)
		err = match(s, &p, &r);
	if (!err && s && !r.nerrors)
		err = registry_repository_register(svc, s, p.rd, p.ndocs, &r);
	if (!err)
		err = registry_response_build(&r, REGISTRY_STATUS_AUTO, &resp->body_xml);
	/* An MTOM request gets an MTOM reply: some SOAP stacks cannot read a plain one after sending MTOM. */
	resp->mtom = req->mtom != NULL;
	hie_log(r.nerrors ? HIE_LOG_NOTICE : HIE_LOG_INFO,
		"event=registry.iti41 documents=%zu bytes=%zu mtom=%s objects=%zu errors=%zu first=%s", p.ndocs,
		p.bytes, req->mtom ? "yes" : "no", s ? s->nobjects_total : 0, r.nerrors, r.n ? r.errs[0].code : "-");
	registry_ebrim_free(s);
	free_pnr(&p);
	hie_buf_free(&scratch);
	registry_response_free(&r);
	return err;
}

hie_err_t registry_retrieve_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	return registry_repository_retrieve(arg, req, resp);
}
