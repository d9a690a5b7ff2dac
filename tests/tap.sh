# tap.sh: the TAP helpers of the shell tests (sourced). A test's message is one line: newlines in
# it (a command's stderr quoted in the message) become spaces, so the runner sees no stray lines.
#   ok MSG, not_ok MSG     one result
#   tap_end                the plan line; the status of the last command is 0 iff nothing failed
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - ${1//$'\n'/ }"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - ${1//$'\n'/ }"; }
tap_end() { echo "1..$n"; [ "$failed" = 0 ]; }
