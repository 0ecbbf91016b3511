inputs_hash() {  # sha256 of INCAR, KPOINTS, POTCAR or else POTCAR.spec in $1 (as tm23data.generation.vasp.static_inputs_hash)
  local f p=POTCAR.spec
  [ -f "$1/POTCAR" ] && p=POTCAR
  for f in INCAR KPOINTS "$p"; do printf '%s\n' "$f"; cat "$1/$f" 2>/dev/null; done |
    sha256sum | cut -d ' ' -f 1
}
scf_converged() {  # whether OUTCAR $1 says the electronic loop reached EDIFF (as tm23data.generation.labels)
  grep -q "aborting loop because EDIFF is reached" "$1"
}
TASKS="${1:?usage: sbatch --array=0-N static.sbatch TASKFILE}"
task="${SLURM_ARRAY_TASK_ID:?this script runs as an array task (sbatch --array=...)}"
ids=$(sed -n "$((task + 1))p" "$TASKS")
if [ -z "$ids" ]; then echo "tm23: no line $((task + 1)) in $TASKS" >&2; exit 1; fi
failures=0
mkdir -p "$STATIC_DIR/runs"
for id in $ids; do
  run="$STATIC_DIR/runs/$id"
  # one task per frame at a time: a second task on a frame being run leaves it alone
  exec 9> "$STATIC_DIR/runs/.$id.lock"
  if ! flock -n 9; then echo "tm23: $id is being run by another task; left alone"; exec 9>&-; continue; fi
  hash=$(inputs_hash "$STATIC_DIR")
  if [ "$(head -n 1 "$run/STATUS" 2>/dev/null)" = "done" ]; then
    if [ "$(cat "$run/INPUTS.sha256" 2>/dev/null)" = "$hash" ]; then echo "tm23: $id already done"; exec 9>&-; continue; fi
    echo "tm23: $id was labelled with other INCAR/KPOINTS/POTCAR; running it again"
  fi
  rm -rf "$run"; mkdir -p "$run"
  printf '%s\n' "$hash" > "$run/INPUTS.sha256"
  printf '%s\n' "running: job ${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-none}} task $task" > "$run/RUNNING"
  cp "$STATIC_DIR/INCAR" "$STATIC_DIR/KPOINTS" "$run/"
  cp "$STATIC_DIR/poscars/$id.vasp" "$run/POSCAR"
  if tm23_potcar "$STATIC_DIR" "$run"; then
    ( cd "$run" && run_vasp ) > "$run/vasp.log" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ]; then status="failed: VASP exited with status $rc (see vasp.log)"
    elif [ ! -f "$run/OUTCAR" ]; then status="failed: no OUTCAR"
    elif scf_converged "$run/OUTCAR"; then status="done"
    else status="unconverged: the electronic loop did not reach EDIFF within NELM steps"; fi
  else
    status="failed: no POTCAR"
  fi
  for f in "${CLEANUP[@]}"; do rm -f "$run/$f"; done
  printf '%s\n' "$status" > "$run/STATUS.tmp" && mv "$run/STATUS.tmp" "$run/STATUS"
  rm -f "$run/RUNNING"
  exec 9>&-
  echo "tm23: $id $status"
  [ "$status" = "done" ] || failures=$((failures + 1))
done
[ "$failures" -eq 0 ]
