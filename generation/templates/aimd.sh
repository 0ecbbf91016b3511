cd "$AIMD_DIR" || exit 1
shopt -s nullglob
count_configs() {  # complete configurations in XDATCAR $1: a "configuration=" line, then one full line per atom
  [ -f "$1" ] || { echo 0; return; }
  local partial=0
  if [ -n "$(tail -c 1 "$1")" ]; then partial=1; fi  # no newline at the end: the last line is unfinished
  awk -v partial="$partial" '
    function take(line, rec,   f, k, j) {
      k = split(line, f)
      if (rec == 7) { natoms = 0; for (j = 1; j <= k; j++) natoms += f[j]; return }
      if (line ~ /configuration *=/) { want = natoms; got = 0; return }
      if (want > 0) {
        if (k >= 3 && f[1] ~ num && f[2] ~ num && f[3] ~ num) { got++; if (got == want) { n++; want = 0 } }
        else want = 0
      }
    }
    BEGIN { num = "^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eEdD][-+]?[0-9]+)?$" }
    NR > 1 { take(prev, NR - 1) }
    { prev = $0 }
    END { if (NR > 0 && partial == 0) take(prev, NR); print n + 0 }' "$1"
}
count_steps() {  # complete configurations over all segments, times NBLOCK
  local n=0 s
  for s in seg[0-9][0-9][0-9]; do
    n=$((n + $(count_configs "$s/XDATCAR")))
  done
  echo $((n * NBLOCK))
}
set_status() { printf '%s\n' "$1" > STATUS.tmp && mv STATUS.tmp STATUS; echo "tm23: $1"; }
done_steps=$(count_steps)
if [ "$done_steps" -ge "$TOTAL" ]; then set_status done; exit 0; fi
segs=(seg[0-9][0-9][0-9])
start=POSCAR
next=${#segs[@]}
if [ "$next" -gt 0 ]; then
  last=${segs[$((next - 1))]}
  if [ -s "$last/CONTCAR" ]; then
    start="$last/CONTCAR"
  elif [ "$(count_configs "$last/XDATCAR")" = "0" ]; then
    echo "tm23: $last made no MD step; running it again"
    rm -rf "$last"; next=$((next - 1))
    if [ "$next" -gt 0 ] && [ -s "${segs[$((next - 1))]}/CONTCAR" ]; then start="${segs[$((next - 1))]}/CONTCAR"; fi
  else
    set_status "failed: $last stopped without a CONTCAR (killed hard?); inspect it, then remove it or copy a configuration to $last/CONTCAR and resubmit"
    exit 1
  fi
fi
seg=$(printf 'seg%03d' "$next")
remaining=$((TOTAL - done_steps))
mkdir -p "$seg"
cp INCAR KPOINTS "$seg/"
cp "$start" "$seg/POSCAR"
tm23_potcar . "$seg" || { set_status "failed: no POTCAR"; exit 1; }
sed -i "s/^NSW = .*/NSW = $remaining/" "$seg/INCAR"
echo "tm23: $seg starts from $start, $remaining of $TOTAL steps to go"
trap 'echo "LSTOP = .TRUE." > "$AIMD_DIR/$seg/STOPCAR"; echo "tm23: time limit near, asked VASP to stop"' USR1
( cd "$seg" && run_vasp ) > "$seg/vasp.log" 2>&1 &
pid=$!
rc=0
while true; do
  wait "$pid"; rc=$?
  kill -0 "$pid" 2>/dev/null || break  # wait was interrupted by the signal: keep waiting
done
for f in "${CLEANUP[@]}"; do rm -f "$seg/$f"; done
done_steps=$(count_steps)
if [ "$done_steps" -ge "$TOTAL" ]; then set_status done; exit 0; fi
if [ ! -s "$seg/CONTCAR" ]; then set_status "failed: VASP exited with status $rc and wrote no CONTCAR (see $AIMD_DIR/$seg/vasp.log)"; exit 1; fi
set_status "partial: $done_steps of $TOTAL steps; resubmit to continue"
exit 0
