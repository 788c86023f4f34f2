#!/usr/bin/env python3
"""Registers and spills of generated kernels, without an NVIDIA GPU.

Compiles each source that `rfc compile MODEL --target sm_90 --emit-kernels
DIR` wrote with NVRTC for sm_90 and prints ptxas's registers, stack frame
and spill bytes per entry function. NVRTC comes from PyPI:

    pip download --no-deps nvidia-cuda-nvrtc && python3 -m zipfile -e nvidia_cuda_nvrtc-*.whl nvrtc
    RFC_NVRTC_LIB=nvrtc/nvidia/cu13/lib/libnvrtc.so.13 scripts/nvrtc-regs.py DIR/matmul_frag_*.hip
"""

import ctypes
import os
import re
import sys


def main() -> int:
    lib_path = os.environ.get("RFC_NVRTC_LIB")
    if not lib_path or len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    lib = ctypes.CDLL(lib_path)
    opts = [b"-arch=sm_90", b"--ptxas-options=-v", b"-w"]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    entry = re.compile(r"Compiling entry function '(\w+)'")
    props = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
    used = re.compile(r"Used (\d+) registers")
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            src = f.read()
        prog = ctypes.c_void_p()
        lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"kernel.cu", 0, None, None)
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
        text = log.value.decode(errors="replace")
        if rc != 0:
            print(f"{os.path.basename(path)}: compile failed\n{text}")
            continue
        # ptxas reports per entry: its name, then stack/spills, then registers.
        fn, stack = None, None
        for line in text.splitlines():
            if m := entry.search(line):
                fn = m.group(1)
            elif m := props.search(line):
                stack = m.groups()
            elif (m := used.search(line)) and fn:
                s = stack or ("?", "?", "?")
                print(f"{os.path.basename(path)} {fn}: {m.group(1)} registers, "
                      f"stack {s[0]} B, spill stores {s[1]} B, loads {s[2]} B")
                fn, stack = None, None
    return 0


if __name__ == "__main__":
    sys.exit(main())
