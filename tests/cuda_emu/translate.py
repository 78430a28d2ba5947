#!/usr/bin/env python3
"""ctrain's CUDA emulator: copies a kernels/cuda/*.cu file to a .cpp whose
kernel launches `k<<<grid, block, smem, stream>>>(args)` become
`ct_emu_launch(k, grid, block, smem, stream)(args)` (see emu.h).
usage: translate.py IN.cu OUT.cpp"""
import re
import sys

src = open(sys.argv[1]).read()
pat = re.compile(r"([A-Za-z_]\w*(?:\s*<[^<>;()]*>)?)\s*<<<(.*?)>>>", re.S)
out, n = pat.subn(lambda m: "ct_emu_launch(%s, %s)" % (m.group(1), m.group(2)), src)
if "<<<" in out:
    sys.exit("translate.py: %s: a launch was not rewritten" % sys.argv[1])
with open(sys.argv[2], "w") as f:
    f.write('#line 1 "%s"\n' % sys.argv[1])
    f.write(out)
