/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

/* The HTTP sender alone, for bench/: POST <count> token-sized bodies to
   <url> with <parallel> requests in flight, as the service's sender keeps
   them, and print the rate and the CPU this process used. Not installed;
   bench/run.sh builds it with "make -C src/service bench-deltapush-http". */

#include "lib.h"
#include "ioloop.h"
#include "strnum.h"
#include "deltapush-http.h"

#include <stdio.h>
#include <time.h>
#include <sys/resource.h>

struct bench_ctx {
	struct deltapush_http *http;
	const char *url;
	unsigned char body[904];
	unsigned int count, started, finished, failed;
};

static void bench_post(struct bench_ctx *ctx);

static void
bench_callback(const struct deltapush_http_result *result, void *context)
{
	struct bench_ctx *ctx = context;

	if (result->status != 200) {
		if (ctx->failed++ == 0) {
			i_error("Push failed: status %u: %s", result->status,
				result->error == NULL ? "" : result->error);
		}
	}
	if (++ctx->finished == ctx->count)
		io_loop_stop(current_ioloop);
	else if (ctx->started < ctx->count)
		bench_post(ctx);
}

static void bench_post(struct bench_ctx *ctx)
{
	ctx->started++;
	(void)deltapush_http_post(ctx->http, ctx->url, ctx->body,
				  sizeof(ctx->body), bench_callback, ctx);
}

static double bench_cpu_secs(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		i_fatal("getrusage() failed: %m");
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double bench_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		i_fatal("clock_gettime() failed: %m");
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char *argv[])
{
	struct deltapush_http_settings set = {
		.timeout_msecs = 30000,
		.user_agent = "deltapush-bench",
	};
	struct bench_ctx ctx;
	struct ioloop *ioloop;
	unsigned int parallel, rounds, round, i;
	double t0, cpu0, secs, cpu;

	lib_init();
	i_zero(&ctx);
	if (argc < 5 || str_to_uint(argv[2], &ctx.count) < 0 ||
	    str_to_uint(argv[3], &parallel) < 0 ||
	    str_to_uint(argv[4], &rounds) < 0 ||
	    ctx.count == 0 || parallel == 0) {
		i_fatal("Usage: %s <url> <count> <parallel> <rounds> "
			"[<ca file>]", argv[0]);
	}
	ctx.url = argv[1];
	memset(ctx.body, 'A', sizeof(ctx.body));
	set.ca_file = argc > 5 ? argv[5] : NULL;
	set.max_connections = parallel;

	deltapush_http_global_init();
	ioloop = io_loop_create();
	ctx.http = deltapush_http_init(&set, NULL);
	/* One process, one sender: the rounds reuse its connections, as
	   the service's bursts do */
	for (round = 0; round < rounds; round++) {
		ctx.started = ctx.finished = ctx.failed = 0;
		t0 = bench_now();
		cpu0 = bench_cpu_secs();
		for (i = 0; i < parallel && i < ctx.count; i++)
			bench_post(&ctx);
		io_loop_run(ioloop);
		secs = bench_now() - t0;
		cpu = bench_cpu_secs() - cpu0;
		printf("round %u pushes %u failed %u secs %.6f cpu %.6f\n",
		       round + 1, ctx.count, ctx.failed, secs, cpu);
		fflush(stdout);
	}
	deltapush_http_deinit(&ctx.http);
	io_loop_destroy(&ioloop);
	deltapush_http_global_deinit();
	lib_deinit();
	return 0;
}
