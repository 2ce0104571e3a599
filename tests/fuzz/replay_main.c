/*
 * Replay driver shared by the fuzz targets of tests/fuzz: feeds every regular file of the
 * corpus directory given as argv[1] to LLVMFuzzerTestOneInput, so that each test run
 * re-checks every input that once found a bug. Linked instead of libFuzzer's main.
 */
#include <dirent.h>
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
	size_t n;
	int rc = 1;

	if (!f) {
		fprintf(stderr, "replay: cannot open %s\n", path);
		return 1;
	}
	buf = malloc(REPLAY_FILE_MAX);
	if (!buf)
		goto out;
	n = fread(buf, 1, REPLAY_FILE_MAX, f);
	if (ferror(f)) {
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

int main(int argc, char **argv)
{
	struct dirent *e;
	DIR *d;
	int failed = 0, count = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	d = opendir(argv[1]);
	if (!d) {
		fprintf(stderr, "replay: cannot open directory %s\n", argv[1]);
		return 1;
	}
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		struct stat sb;
		int n = snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);

		if (n < 0 || (size_t)n >= sizeof(path))
			continue;
		if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		failed |= replay_file(path);
		count++;
	}
	closedir(d);
	printf("replayed %d inputs from %s\n", count, argv[1]);
	return failed ? 1 : 0;
}
