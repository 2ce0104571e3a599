/*
 * The static file server for web/. Only paths of [A-Za-z0-9._-] segments without ".."
 * are served; the content type comes from the extension.
 */
#include "http/static.h"

#include "config.h"
#include "core/text.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef DH_WEB_DIR
#define DH_WEB_DIR "web"
#endif

static const struct {
	const char *ext;
	const char *type;
} types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".json", "application/json; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
	{ ".txt", "text/plain; charset=utf-8" },
};

static bool safe_path(const char *p)
{
	if (*p != '/')
		return false;
	for (const char *s = p; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || c == '/'))
			return false;
	}
	return strstr(p, "..") == NULL && strstr(p, "//") == NULL;
}

static enum dh_err serve(struct dh_req *req, const char *rel)
{
	const char *dir = *dh_cfg.web_dir ? dh_cfg.web_dir : DH_WEB_DIR;
	const char *type = "application/octet-stream", *dot;
	char path[4096];
	struct stat st;
	int fd, n;
	enum dh_err rc;

	n = snprintf(path, sizeof(path), "%s%s", dir, rel);
	if (n < 0 || (size_t)n >= sizeof(path))
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such file.");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such file: %.*s",
				    DH_TEXT_CUT(rel, 200));
	}
	dot = strrchr(rel, '.');
	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++) {
		if (strcmp(dot, types[i].ext) == 0)
			type = types[i].type;
	}
	rc = dh_http_reply_fd(req, 200, fd, 0, (uint64_t)st.st_size);
	if (rc == DH_OK) {
		dh_http_header(req, "Content-Type", type);
		dh_http_header(req, "Cache-Control", "no-cache");
		dh_http_header(req, "X-Content-Type-Options", "nosniff");
	}
	return rc;
}

enum dh_err dh_http_static(struct dh_req *req)
{
	const char *p = req->path;

	if (strcmp(p, "/") == 0)
		p = "/index.html";
	if (!safe_path(p))
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such file.");
	return serve(req, p);
}

enum dh_err dh_http_openapi(struct dh_req *req)
{
	return serve(req, "/openapi.json");
}
