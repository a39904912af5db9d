# Negative controls for the harness' own absence checks (lacks, output_lacks): each must FAIL
# on a missing file, a failing command and a present pattern, else every "no X" check built on
# them could pass for the wrong reason. Sourced by run.sh.

HC=$(mktemp -d "$H_TMP/harness.XXXXXX")
printf 'alpha\nbeta\n' > "$HC/file"
check "control: lacks passes when the pattern is absent" lacks 'gamma' "$HC/file"
check "control: lacks fails when the pattern is present" fails lacks 'beta' "$HC/file"
check "control: lacks fails on a file that does not exist (a blind ! grep passes here)" fails lacks 'gamma' "$HC/missing"
check "control: lacks searches a directory recursively" fails lacks 'alpha' "$HC"
check "control: output_lacks passes when the output lacks the pattern" output_lacks 'gamma' cat "$HC/file"
check "control: output_lacks fails when the output has it" fails output_lacks 'alpha' cat "$HC/file"
check "control: output_lacks fails when the command fails (a blind ! cmd | grep passes here)" fails output_lacks 'gamma' cat "$HC/missing"
