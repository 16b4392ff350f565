#!/usr/bin/env bash
# Time a new user's path from a fresh clone to the first figure on disk (README "Quickstart"):
# clone the committed branch, make a virtual environment, then run the Quickstart's bash lines (its
# pip install first: a warm pip cache is the user's business) one by one until a PNG exists under
# runs/. Prints wall and CPU time per step and the load average. Fresh numba cache (the clone has none).
#
#     bash benchmarks/first_figure.sh [REPO [BRANCH]]     # default: this checkout, its branch
set -u
repo=${1:-$(git rev-parse --show-toplevel)}
branch=${2:-$(git -C "$repo" rev-parse --abbrev-ref HEAD)}
dir=$(mktemp -d -t firstfig.XXXX)
unset PYTHONPATH NUMBA_CACHE_DIR OMP_NUM_THREADS OPENBLAS_NUM_THREADS NUMBA_NUM_THREADS MPLBACKEND
load0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s.%N)
stamp() { python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):7.1f} s  {sys.argv[3]}')" "$(date +%s.%N)" "$T0" "$1"; }
git clone -q -b "$branch" "$repo" "$dir/p" && cd "$dir/p" || exit 1
stamp "cloned"
/usr/bin/time -f "CPU %U user %S sys, %e wall" -a -o "$dir/cpu.log" python3 -m venv "$dir/venv" && export PATH="$dir/venv/bin:$PATH"
stamp "venv ($(tail -1 "$dir/cpu.log"))"
# the Quickstart section's first bash block, line by line
python3 - > "$dir/quick.sh" <<'PY'
import re
text = open("README.md").read()
sec = text.split("## Quickstart", 1)[1]
block = re.search(r"```bash\n(.*?)```", sec, re.S).group(1)
for line in block.splitlines():
    line = line.split("  #")[0].strip()
    if line:
        print(line)
PY
while read -r cmd; do
  /usr/bin/time -f "CPU %U user %S sys, %e wall" -a -o "$dir/cpu.log" bash -c "$cmd" >>"$dir/quick.log" 2>&1 </dev/null || { echo "FAILED: $cmd"; tail "$dir/quick.log"; exit 1; }
  stamp "$cmd ($(tail -1 "$dir/cpu.log"))"
  first=$(ls -tr runs/*/*.png 2>/dev/null | head -1)
  if [ -n "$first" ]; then
    python3 -c "import os, sys; print(f'{os.path.getmtime(sys.argv[1]) - float(sys.argv[2]):7.1f} s  FIRST FIGURE written: {sys.argv[1]}')" "$first" "$T0"
    break
  fi
done < "$dir/quick.sh"
python3 -c "import re,sys; v=[sum(map(float, re.findall(r'([0-9.]+) (?:user|sys)', l))) for l in open(sys.argv[1])]; print(f'CPU total {sum(v):.1f} s over {len(v)} commands')" "$dir/cpu.log"
echo "load before: $load0; after: $(cut -d' ' -f1-3 /proc/loadavg); cores: $(nproc); dir $dir"
