/*
 * The `exec` step: runs a program an admin configured, with the session's facts and the
 * image in its environment, in its own process group so that a timeout or shutdown kills it
 * and everything it started. Only admins may configure it (plugins/registry.c).
 *
 * Params: program (absolute path, required), args (array of strings), timeout (seconds; the
 * worker stops the step then; default: what remains of processing_timeout).
 * Environment: PATH=/usr/local/bin:/usr/bin:/bin, DH_IMAGE_PATH, DH_IMAGE_SHA256,
 * DH_IMAGE_SIZE, DH_SESSION_ID, DH_DEVICE_ID, DH_TARGET_VERSION, DH_CURRENT_VERSION, DH_MODEL.
 * stdin is /dev/null, stdout and stderr pipes to the worker, and no other descriptor is open.
 * Exit status 0 is success; anything else, a signal, or running past the
 * deadline fails the session, with the end of stderr in the error. When the last non-empty
 * line of stdout is a JSON object, its keys are merged into the payload.
 */
#include "core/text.h"
#include "plugins/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Arguments accepted in params.args; a command line, not a data channel. */
#define EXEC_ARGS_MAX 64
/* stdout kept for the JSON line (its last bytes); the payload is not a log. */
#define EXEC_STDOUT_MAX (64 * 1024)
/* Tail of stderr quoted in the error sentence. */
#define EXEC_STDERR_TAIL 200
/* How often the run loop looks at the cancellation flag. */
#define EXEC_POLL_MS 50
/* Descriptors the child closes one by one when close_range is missing and RLIMIT_NOFILE says
 * nothing useful: fs.nr_open's default, the most a process can hold unless an operator raised
 * it. */
#define EXEC_FD_FALLBACK_MAX (1024 * 1024)

extern char **environ;

struct buf {
	char *data;
	size_t len, cap;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends, keeping only the last cap bytes. */
static void buf_tail(struct buf *b, const char *p, size_t n)
{
	if (n >= b->cap) {
		memcpy(b->data, p + n - b->cap, b->cap);
		b->len = b->cap;
		return;
	}
	if (b->len + n > b->cap) {
		size_t drop = b->len + n - b->cap;
		memmove(b->data, b->data + drop, b->len - drop);
		b->len -= drop;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* One past the highest descriptor this process may hold: where the child's fallback loop
 * stops when close_range is missing (kernels before 5.9). */
static int fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > INT_MAX)
		return EXEC_FD_FALLBACK_MAX;
	return (int)rl.rlim_cur;
}

static char *env_var(const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 2;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s=%s", name, value);
	return s;
}

/* Merges the last non-empty stdout line when it is a JSON object. */
static void merge_last_line(struct dh_step_ctx *ctx, struct buf *out)
{
	size_t end = out->len, start;
	json_t *obj;

	while (end > 0 && (out->data[end - 1] == '\n' || out->data[end - 1] == '\r' ||
			   out->data[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && out->data[start - 1] != '\n')
		start--;
	if (end <= start || out->data[start] != '{')
		return;
	obj = json_loadb(out->data + start, end - start, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_object(obj))
		ctx->merge(ctx, obj);
	json_decref(obj);
}

static void stderr_tail(struct buf *err, char *out, size_t size)
{
	size_t start = err->len > EXEC_STDERR_TAIL ? err->len - EXEC_STDERR_TAIL : 0, o = 0;

	for (size_t i = start; i < err->len && o + 1 < size; i++) {
		char c = err->data[i];
		out[o++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : (c < 32 ? '?' : c);
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = 0;
}

bool dh_exec_validate(const json_t *params, char *why, size_t cap)
{
	const char *k, *program = json_string_value(json_object_get(params, "program"));
	json_t *v, *args = json_object_get(params, "args"), *timeout;
	size_t i;

	if (!program || program[0] != '/' || strlen(program) > 4095) {
		snprintf(why, cap, "params.program: must be an absolute path");
		return false;
	}
	if (args && (!json_is_array(args) || json_array_size(args) > EXEC_ARGS_MAX)) {
		snprintf(why, cap, "params.args: must be an array of at most %d strings",
			 EXEC_ARGS_MAX);
		return false;
	}
	json_array_foreach(args, i, v)
	{
		if (!json_is_string(v)) {
			snprintf(why, cap, "params.args[%zu]: must be a string", i);
			return false;
		}
	}
	timeout = json_object_get(params, "timeout");
	if (timeout && (!json_is_integer(timeout) || json_integer_value(timeout) < 1)) {
		snprintf(why, cap, "params.timeout: must be a positive number of seconds");
		return false;
	}
	json_object_foreach((json_t *)params, k, v)
	{
		if (strcmp(k, "program") && strcmp(k, "args") && strcmp(k, "timeout")) {
			snprintf(why, cap, "params.%.*s: unknown key", DH_TEXT_CUT(k, 60));
			return false;
		}
	}
	return true;
}

static enum dh_step_result exec_run(struct dh_step_ctx *ctx)
{
	const char *program = json_string_value(json_object_get(ctx->params, "program"));
	json_t *args = json_object_get(ctx->params, "args"), *a;
	char *argv[EXEC_ARGS_MAX + 2] = { 0 }, *envp[16] = { 0 }, size[32],
				   tail[EXEC_STDERR_TAIL + 8];
	struct buf out = { 0 }, err = { 0 };
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, status = 0, ne = 0;
	enum dh_step_result res = DH_STEP_FAIL;
	bool reaped = false, timed_out = false, cancelled = false;
	pid_t pid = -1;
	int fd_end;
	size_t i;

	if (!program || program[0] != '/') {
		snprintf(ctx->error, sizeof(ctx->error), "params.program must be an absolute path");
		return DH_STEP_FAIL;
	}
	if (args && (!json_is_array(args) || json_array_size(args) > EXEC_ARGS_MAX)) {
		snprintf(ctx->error, sizeof(ctx->error),
			 "params.args must be an array of at most %d strings", EXEC_ARGS_MAX);
		return DH_STEP_FAIL;
	}
	argv[0] = (char *)program;
	json_array_foreach(args, i, a)
	{
		if (!json_is_string(a)) {
			snprintf(ctx->error, sizeof(ctx->error),
				 "params.args[%zu] must be a string", i);
			return DH_STEP_FAIL;
		}
		argv[i + 1] = (char *)json_string_value(a);
	}
	snprintf(size, sizeof(size), "%llu", (unsigned long long)ctx->image_size);
	envp[ne++] = env_var("PATH", "/usr/local/bin:/usr/bin:/bin");
	envp[ne++] = env_var("DH_IMAGE_PATH", ctx->image_path);
	envp[ne++] = env_var("DH_IMAGE_SHA256", ctx->image_sha256);
	envp[ne++] = env_var("DH_IMAGE_SIZE", size);
	envp[ne++] = env_var("DH_SESSION_ID", ctx->session_id);
	envp[ne++] = env_var("DH_DEVICE_ID", ctx->device_id);
	envp[ne++] = env_var("DH_TARGET_VERSION", ctx->target_version);
	envp[ne++] = env_var("DH_CURRENT_VERSION", ctx->current_version);
	envp[ne++] = env_var("DH_MODEL", ctx->model_id);
	out.cap = EXEC_STDOUT_MAX;
	err.cap = EXEC_STDERR_TAIL;
	out.data = malloc(out.cap);
	err.data = malloc(err.cap);
	for (int k = 0; k < ne; k++) {
		if (!envp[k])
			goto nomem;
	}
	if (!out.data || !err.data)
		goto nomem;
	if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
		snprintf(ctx->error, sizeof(ctx->error), "cannot create pipes: %s",
			 strerror(errno));
		goto out;
	}
	fd_end = fd_limit();
	pid = fork();
	if (pid < 0) {
		snprintf(ctx->error, sizeof(ctx->error), "cannot fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* the child: only async-signal-safe calls until execve */
		int src[3];
		sigset_t none;
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		/* the three sources first above 2, so that no dup2 below overwrites another's
		 * source (a server started with 0-2 closed has its pipes there) */
		src[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		src[1] = fcntl(po[1], F_DUPFD_CLOEXEC, 3);
		src[2] = fcntl(pe[1], F_DUPFD_CLOEXEC, 3);
		if (src[0] >= 0 && src[0] < 3)
			src[0] = fcntl(src[0], F_DUPFD_CLOEXEC, 3);
		for (int k = 0; k < 3; k++) {
			if (src[k] < 0 || dup2(src[k], k) != k)
				_exit(127);
		}
		/* and nothing else: not the listening socket, the database, other clients'
		 * connections or what a plugin opened without O_CLOEXEC */
		if (close_range(3, ~0u, 0) != 0) {
			for (int fd = 3; fd < fd_end; fd++)
				close(fd);
		}
		execve(program, argv, envp);
		_exit(127);
	}
	setpgid(pid, pid); /* also here: whichever runs first, the group exists before a kill */
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	while (po[0] >= 0 || pe[0] >= 0 || !reaped) {
		struct pollfd fds[2] = { { .fd = po[0], .events = POLLIN },
					 { .fd = pe[0], .events = POLLIN } };
		char chunk[4096];
		if (ctx->cancelled(ctx)) {
			timed_out = mono_ms() >= ctx->deadline_ms;
			cancelled = true;
			break;
		}
		if (po[0] >= 0 || pe[0] >= 0) {
			if (poll(fds, 2, EXEC_POLL_MS) < 0 && errno != EINTR)
				break;
		} else {
			struct timespec ts = { 0, EXEC_POLL_MS * 1000000L };
			nanosleep(&ts, NULL);
		}
		for (int k = 0; k < 2; k++) {
			int *fd = k == 0 ? &po[0] : &pe[0];
			ssize_t n;
			if (*fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(*fd, chunk, sizeof(chunk));
			if (n > 0) {
				buf_tail(k == 0 ? &out : &err, chunk, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(*fd);
				*fd = -1;
			}
		}
		if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
			reaped = true;
			/* what the program left running in its group would hold the pipes open
			 * until the deadline: the step is over, so end it */
			kill(-pid, SIGKILL);
		}
	}
	if (!reaped) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		reaped = true;
	}
	if (cancelled) {
		if (timed_out) {
			snprintf(ctx->error, sizeof(ctx->error),
				 "%s did not finish in time and was killed", program);
			goto out;
		}
		res = DH_STEP_CANCELLED;
		goto out;
	}
	stderr_tail(&err, tail, sizeof(tail));
	if (WIFSIGNALED(status)) {
		snprintf(ctx->error, sizeof(ctx->error), "%s was killed by signal %d%s%s", program,
			 WTERMSIG(status), *tail ? ": " : "", tail);
	} else if (WEXITSTATUS(status) == 127 && !err.len) {
		snprintf(ctx->error, sizeof(ctx->error), "%s could not be run (exit status 127)",
			 program);
	} else if (WEXITSTATUS(status) != 0) {
		snprintf(ctx->error, sizeof(ctx->error), "%s exited with status %d%s%s", program,
			 WEXITSTATUS(status), *tail ? ": " : "", tail);
	} else {
		merge_last_line(ctx, &out);
		res = DH_STEP_OK;
	}
	goto out;
nomem:
	snprintf(ctx->error, sizeof(ctx->error), "out of memory");
out:
	for (int k = 0; k < 2; k++) {
		if (po[k] >= 0)
			close(po[k]);
		if (pe[k] >= 0)
			close(pe[k]);
	}
	for (int k = 0; k < ne; k++)
		free(envp[k]);
	free(out.data);
	free(err.data);
	return res;
}

const struct dh_plugin dh_plugin_exec = {
	.abi = DH_PLUGIN_ABI,
	.name = "exec",
	.admin_only = true,
	.run = exec_run,
};
