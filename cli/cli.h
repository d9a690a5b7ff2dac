/* cli.h: shared pieces of the heapreplay command-line tool (one file per group of commands). */
#ifndef HR_CLI_H
#define HR_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "hr_common.h"

typedef struct hr_cmd {
    const char *name;
    const char *synopsis; /* "TEXT -o TRACE" */
    const char *summary;  /* one line, for the command list */
    const char *help;     /* the options, one per line */
    int (*run)(int argc, char **argv);
    const char *details;  /* COMMAND --help shows this instead of the summary; may be NULL */
} hr_cmd_t;

/* A tiny option parser: options may come before or after operands; "--" ends options. */
typedef struct hr_opt {
    const char *name;  /* "-o", "--limit" */
    const char *alias; /* another name or NULL */
    int takes_value;
    const char *value; /* set when seen (for flags: "1") */
} hr_opt_t;

/* Parse argv[1..]; fills opts and the operand list. Returns 0, or 1 (usage, message printed). */
int hr_cli_parse(const char *cmd, int argc, char **argv, hr_opt_t *opts, size_t nopts,
                 char **operands, int max_operands, int *noperands);
/* Print "heapreplay: msg" to stderr and return the exit status for err's code. */
int hr_cli_fail(const hr_err_t *err);
int hr_cli_usage(const char *cmd, const char *fmt, ...) HR_PRINTF(2, 3);
/* Write s to f with control characters shown as \xNN, so that names and values from a trace or a
 * program (metadata, type names, messages quoting them) cannot drive the terminal. Tabs pass,
 * and newlines when keep_newlines (messages of several lines). */
void hr_cli_put_safe(FILE *f, const char *s, int keep_newlines);
/* 1 (usage message printed) when the output `out` given with option `opt` would replace the
 * input `in` (the same regular file, however spelled): a trace, a script, a text; else 0. NULLs
 * are fine. */
int hr_cli_replaces_input(const char *cmd, const char *opt, const char *out, const char *in);

extern const hr_cmd_t hr_cmd_pack, hr_cmd_dump, hr_cmd_info, hr_cmd_gen, hr_cmd_replay,
    hr_cmd_allocators, hr_cmd_collectors, hr_cmd_record, hr_cmd_validate, hr_cmd_run,
    hr_cmd_refcounts;

#endif
