/*
 * notice_fuzz.c — libFuzzer target for the MDN/DSN reader (hisp_notice_parse_nth) and the header reader
 * (hisp_msg_header) that the receive job runs on every decrypted message: no crash, every string field
 * NUL-terminated within its array, and a recognised MDN/DSN names its original message.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hisp/hisp_notice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	for (unsigned nth = 0; nth < 3; nth++) {
		struct hisp_notice_info info;
		memset(&info, 0x5a, sizeof info);
		if (hisp_notice_parse_nth(msg, size, nth, &info) != HIE_OK)
			continue;
		if (!memchr(info.disposition, 0, sizeof info.disposition) ||
		    !memchr(info.original_message_id, 0, sizeof info.original_message_id) ||
		    !memchr(info.final_recipient, 0, sizeof info.final_recipient))
			__builtin_trap();
	}
	struct hie_buf b;
	hie_buf_init(&b, 64 * 1024);
	static const char *const names[] = {"From", "To", "Cc", "Bcc", "Message-ID", "Disposition-Notification-Options"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		hie_buf_reset(&b);
		(void)hisp_msg_header(msg, size, names[i], 0, &b);
		if (b.len > b.max)
			__builtin_trap();
	}
	hie_buf_free(&b);
	return 0;
}
