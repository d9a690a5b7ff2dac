/* main.c: the heapreplay command-line tool: dispatch, help and option parsing. */
#include "cli.h"
#include "hr_config.h"
#include "hr_out.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const hr_cmd_t *const commands[] = {&hr_cmd_record, &hr_cmd_validate, &hr_cmd_replay,
                                           &hr_cmd_run, &hr_cmd_gen, &hr_cmd_info,
                                           &hr_cmd_refcounts, &hr_cmd_pack, &hr_cmd_dump,
                                           &hr_cmd_allocators, &hr_cmd_collectors, NULL};

int hr_cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "heapreplay %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'heapreplay %s --help')\n", cmd);
    return 1;
}

void hr_cli_put_safe(FILE *f, const char *s, int keep_newlines)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t' && !(c == '\n' && keep_newlines)) || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            putc(c, f);
    }
}

int hr_cli_replaces_input(const char *cmd, const char *opt, const char *out, const char *in)
{
    if (!hr_out_replaces(out, in))
        return 0;
    hr_cli_usage(cmd, "%s %s is the input %s: the output would take its place", opt, out, in);
    return 1;
}

int hr_cli_fail(const hr_err_t *err)
{
    const char *m = err->msg[0] ? err->msg : hr_strerror(err->code);
    fputs("heapreplay: ", stderr);
    hr_cli_put_safe(stderr, m, 1);
    putc('\n', stderr);
    return hr_exit_status(err->code);
}

static void command_help(const hr_cmd_t *c, FILE *f)
{
    fprintf(f, "usage: heapreplay %s %s\n\n%s\n", c->name, c->synopsis,
            c->details ? c->details : c->summary);
    if (c->help && *c->help)
        fprintf(f, "\noptions:\n%s", c->help);
    fprintf(f, "\nexit status: 0 success, 1 usage error, 2 bad input, 3 other failure\n");
}

int hr_cli_parse(const char *cmd, int argc, char **argv, hr_opt_t *opts, size_t nopts,
                 char **operands, int max_operands, int *noperands)
{
    *noperands = 0;
    int only_operands = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_operands && strcmp(a, "--") == 0) {
            only_operands = 1;
            continue;
        }
        if (!only_operands && a[0] == '-' && a[1] != '\0') {
            const char *eq = strchr(a, '=');
            size_t alen = eq ? (size_t)(eq - a) : strlen(a);
            hr_opt_t *o = NULL;
            for (size_t k = 0; k < nopts && !o; k++)
                if ((strlen(opts[k].name) == alen && strncmp(opts[k].name, a, alen) == 0) ||
                    (opts[k].alias && strlen(opts[k].alias) == alen &&
                     strncmp(opts[k].alias, a, alen) == 0))
                    o = &opts[k];
            if (!o) {
                /* -q exists where there is progress to silence (replay, run); elsewhere say so
                 * rather than leave a script writer guessing */
                int quiet = (alen == 2 && !strncmp(a, "-q", 2)) ||
                            (alen == 7 && !strncmp(a, "--quiet", 7));
                return hr_cli_usage(cmd, "unknown option '%.*s'%s", (int)alen, a,
                                    quiet ? " (this command prints no progress to silence; only "
                                            "replay and run take -q)" : "");
            }
            if (o->takes_value) {
                /* given twice: which one was meant? (the last one used to win silently) */
                if (o->value)
                    return hr_cli_usage(cmd, "option '%s' given twice", o->name);
                if (eq)
                    o->value = eq + 1;
                else if (i + 1 < argc)
                    o->value = argv[++i];
                else
                    return hr_cli_usage(cmd, "option '%s' needs a value", o->name);
            } else {
                if (eq)
                    return hr_cli_usage(cmd, "option '%s' takes no value", o->name);
                o->value = "1";
            }
            continue;
        }
        if (*noperands == max_operands)
            return hr_cli_usage(cmd, "unexpected argument '%s'", a);
        operands[(*noperands)++] = argv[i];
    }
    return 0;
}

static void main_help(FILE *f)
{
    fprintf(f, "heapreplay %s: record, replay and study Python-style memory management.\n\n"
               "usage: heapreplay COMMAND [ARGS...]\n\ncommands:\n", HR_VERSION);
    for (size_t i = 0; commands[i]; i++)
        fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "\n'heapreplay COMMAND --help' describes a command. Trace format: docs/trace-format.md\n"
               "exit status: 0 success, 1 usage error, 2 bad input, 3 other failure\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        main_help(stderr);
        return 1;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        if (argc > 2) {
            for (size_t i = 0; commands[i]; i++)
                if (strcmp(commands[i]->name, argv[2]) == 0) {
                    command_help(commands[i], stdout);
                    return 0;
                }
        }
        main_help(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("heapreplay %s (commit %s)\n", HR_VERSION, HR_COMMIT);
        return 0;
    }
    for (size_t i = 0; commands[i]; i++) {
        if (strcmp(commands[i]->name, name) != 0)
            continue;
        for (int k = 2; k < argc; k++) {
            if (strcmp(argv[k], "--") == 0)
                break;
            if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
                command_help(commands[i], stdout);
                return 0;
            }
        }
        /* a killed command removes the temporary files of its outputs (hr_out.h) */
        hr_out_catch_signals();
        int rc = commands[i]->run(argc - 1, argv + 1);
        /* an earlier write may have failed already (a full disk, a closed pipe): ferror too */
        if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
            fprintf(stderr, "heapreplay %s: error writing standard output\n", name);
            return 3;
        }
        return rc;
    }
    fprintf(stderr, "heapreplay: unknown command '%s'\n\n", name);
    main_help(stderr);
    return 1;
}
