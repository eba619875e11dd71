/*
 * hisp_util.c — reason strings, the Date: header and printable text for the whole Direct module. See hisp_util.h.
 */
#include "hisp/hisp_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

void hisp_reason(char *reason, size_t rlen, const char *fmt, ...)
{
	if (!reason || rlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, rlen, fmt, ap);
	va_end(ap);
}

hie_err_t hisp_add_date(struct hie_buf *b)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t now = time(NULL);
	struct tm tm;
	if (!gmtime_r(&now, &tm))
		return HIE_ESYS;
	return hie_buf_addf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday % 7], tm.tm_mday,
			    months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void hisp_printable(const char *s, char *out, size_t outlen, char repl)
{
	size_t n = 0;
	for (; s && *s && n + 1 < outlen; s++)
		out[n++] = ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) ? repl : *s;
	out[n] = '\0';
}
