/*
 * UTF-8 rules for text that comes from outside (query strings, paths, multipart fields,
 * device messages, plugin output) and goes into JSON, SQL or a log line: is it well-formed,
 * where may it be cut, and how is it made well-formed by escaping the bytes that are not.
 * Pure: no allocation, no I/O. JSON (jansson) refuses strings that are not well-formed, so
 * every text echoed in an answer passes through here or through a check of its own.
 */
#ifndef DH_CORE_TEXT_H
#define DH_CORE_TEXT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Bytes of the well-formed UTF-8 character that starts s[0..n) (1 to 4), or 0 when s does
 * not start with one (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF;
 * an incomplete character at the end of s is not well-formed either).
 */
size_t dh_utf8_char(const char *s, size_t n);

/* True when s[0..n) is well-formed UTF-8 (a NUL byte is well-formed; callers that need C
 * strings check for NUL themselves). */
bool dh_utf8_valid(const char *s, size_t n);

/*
 * n less the bytes of an incomplete character at the end of s[0..n): one to three bytes
 * that would begin a well-formed character if more followed. That is what cutting text
 * at a byte count (snprintf into a fixed buffer) leaves of a character.
 */
size_t dh_utf8_trim_partial(const char *s, size_t n);

/*
 * Length of the longest prefix of the NUL-terminated s that is at most max bytes long and
 * does not end inside a well-formed character. A byte that belongs to no character counts
 * as one of its own. Use as `"%.*s", DH_TEXT_CUT(s, 60)` wherever text is shortened.
 */
size_t dh_utf8_cut(const char *s, size_t max);
#define DH_TEXT_CUT(s, max) (int)dh_utf8_cut((s), (max)), (s)

/*
 * Copies in[0..len) into out (size > 0 bytes, always NUL-terminated) as well-formed UTF-8:
 * each byte that belongs to no well-formed character, and each NUL, becomes the four
 * characters \xNN (lower-case hex). Nothing is split: when the rest does not fit, the copy
 * ends before the first character or escape that does not. Returns the bytes written
 * (without the NUL).
 */
size_t dh_text_clean(char *out, size_t size, const char *in, size_t len);

/* Flags of dh_text_escape. */
#define DH_TEXT_CONTROLS   1u /* escape control characters too (see dh_text_escape) */
#define DH_TEXT_KEEP_LINES 2u /* with DH_TEXT_CONTROLS: but keep '\n' and '\t' as they are */

/*
 * dh_text_clean, and with DH_TEXT_CONTROLS every byte of a control character becomes \xNN
 * too: C0 (U+0000..U+001F), DEL, C1 (U+0080..U+009F) and the line and paragraph separators
 * U+2028/U+2029, the set the logger escapes. For text from a device or a program that is
 * printed on a terminal or shown to a reader: nothing in it can move a cursor, recolour what
 * follows or end a line where the reader does not expect one. DH_TEXT_KEEP_LINES keeps
 * line feeds and tabs (multi-line output). A character or escape that does not fit is left
 * out whole, as in dh_text_clean, and nothing is split. Returns the bytes written.
 */
size_t dh_text_escape(char *out, size_t size, const char *in, size_t len, unsigned flags);

/*
 * printf-style formatting into out (size > 0 bytes), then dh_text_clean: the result is
 * always well-formed UTF-8, cut on a character boundary when too long. Returns its length.
 */
size_t dh_text_format(char *out, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
size_t dh_text_vformat(char *out, size_t size, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#endif
