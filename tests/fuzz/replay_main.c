/*
 * Replay driver shared by the fuzz targets of tests/fuzz: feeds every regular file of the
 * corpus directories (or single files) given as arguments to LLVMFuzzerTestOneInput, so that
 * each test run re-checks every input that once found a bug. Linked instead of libFuzzer's
 * main. Like LLVM's standalone main, each input is handed over in a heap buffer of exactly its
 * length, so that ASan reports a read one byte past the end.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Corpus files are small seeds and crashers; anything larger is not one of ours. */
#define REPLAY_FILE_MAX (1024 * 1024)

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	struct stat sb;
	size_t n;
	int rc = 1;

	if (!f) {
		fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0 || sb.st_size > REPLAY_FILE_MAX) {
		fprintf(stderr, "replay: %s is not a corpus file (over %d bytes?)\n", path,
			REPLAY_FILE_MAX);
		goto out;
	}
	n = (size_t)sb.st_size;
	/* exactly n bytes: malloc(0) too gives a block that ASan guards */
	buf = malloc(n);
	if (!buf && n > 0)
		goto out;
	if (fread(buf, 1, n, f) != n) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		goto out;
	}
	LLVMFuzzerTestOneInput(buf, n);
	rc = 0;
out:
	free(buf);
	fclose(f);
	return rc;
}

static int replay_dir(const char *dir, int *count)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int failed = 0;

	if (!d) {
		fprintf(stderr, "replay: cannot open directory %s: %s\n", dir, strerror(errno));
		return 1;
	}
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		struct stat sb;
		int n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);

		if (n < 0 || (size_t)n >= sizeof(path))
			continue;
		if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		failed |= replay_file(path);
		(*count)++;
	}
	closedir(d);
	return failed;
}

int main(int argc, char **argv)
{
	int failed = 0, count = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat sb;

		if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
			failed |= replay_dir(argv[i], &count);
		} else {
			failed |= replay_file(argv[i]);
			count++;
		}
	}
	printf("replayed %d inputs\n", count);
	return failed ? 1 : 0;
}
