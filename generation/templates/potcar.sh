tm23_potcar() {  # copy $1/POTCAR into $2, or build it from $1/POTCAR.spec and $POTCAR_DIR/NAME/POTCAR
  if [ -f "$1/POTCAR" ]; then cp "$1/POTCAR" "$2/POTCAR"; return; fi
  if [ ! -f "$1/POTCAR.spec" ]; then echo "tm23: no POTCAR or POTCAR.spec in $1" >&2; return 1; fi
  if [ -z "$POTCAR_DIR" ]; then
    echo "tm23: $1 has only POTCAR.spec ($(tr '\n' ' ' < "$1/POTCAR.spec")); set slurm.potcar_dir to the folder of PAW datasets (NAME/POTCAR) or configure pymatgen (PMG_VASP_PSP_DIR) and rewrite the inputs" >&2
    return 1
  fi
  : > "$2/POTCAR.tmp"
  while read -r name; do
    [ -n "$name" ] || continue
    if [ -f "$POTCAR_DIR/$name/POTCAR" ]; then cat "$POTCAR_DIR/$name/POTCAR" >> "$2/POTCAR.tmp"
    elif [ -f "$POTCAR_DIR/$name/POTCAR.gz" ]; then zcat "$POTCAR_DIR/$name/POTCAR.gz" >> "$2/POTCAR.tmp"
    else echo "tm23: no $POTCAR_DIR/$name/POTCAR" >&2; rm -f "$2/POTCAR.tmp"; return 1; fi
  done < "$1/POTCAR.spec"
  mv "$2/POTCAR.tmp" "$2/POTCAR"
}
