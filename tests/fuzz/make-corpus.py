#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ (committed; rerun
only to change them). Seeds are small valid inputs for each parser."""
import os, struct

here = os.path.dirname(os.path.abspath(__file__))

def put(target, name, data):
    d = os.path.join(here, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)

# blkif: abi, flags, sector-size shift, max_indirect (le16), nr_sectors
# (le64), then the slot (x86_64 layout for abi 0/2, x86_32 for 1).
def hdr(abi, flags=0x0e, shift=0, maxind=256, sectors=1 << 20):
    return bytes([abi, flags, shift]) + struct.pack('<HQ', maxind, sectors)

def rw64(op, nseg, sector, segs):
    s = struct.pack('<BBHIQQ', op, nseg, 0, 0, 0x1234, sector)
    for g, f, l in segs:
        s += struct.pack('<IBBH', g, f, l, 0)
    return s

def rw32(op, nseg, sector, segs):
    s = struct.pack('<BBHQQ', op, nseg, 0, 0x1234, sector)
    for g, f, l in segs:
        s += struct.pack('<IBBH', g, f, l, 0)
    return s

put('blkif', 'read-64', hdr(2) + rw64(0, 2, 8, [(5, 0, 7), (6, 0, 3)]))
put('blkif', 'write-32', hdr(1) + rw32(1, 1, 0, [(5, 1, 6)]))
put('blkif', 'flush', hdr(0) + rw64(3, 0, 0, []))
put('blkif', 'discard-64', hdr(2) + struct.pack('<BBHIQQQ', 5, 0, 0, 0, 1, 16, 64))
ind = struct.pack('<BBHIQQH', 6, 0, 600, 0, 9, 0, 0) + struct.pack('<8I', *range(1, 9))
page = b''.join(struct.pack('<IBBH', i, 0, 7, 0) for i in range(512))
put('blkif', 'indirect-2pages', hdr(2, maxind=1024) + ind.ljust(112, b'\0') + page + page[:88 * 8])
put('blkif', 'read-4k', hdr(2, shift=3) + rw64(0, 1, 8, [(5, 0, 7)]))

for name, s in [('state', b'4'), ('ring-ref', b'8'), ('order', b'2'),
                ('u32max', b'4294967295'), ('path', b'3/51712/state'),
                ('proto', b'x86_64-abi'), ('proto32', b'x86_32-abi')]:
    put('xenstore-values', name, s)

def msg(t, body, req=1, tx=0):
    return struct.pack('<IIII', t, req, tx, len(body)) + body

XS_DIRECTORY, XS_READ, XS_WATCH, XS_TS, XS_TE, XS_INTRO = 1, 2, 4, 6, 7, 8
XS_GDP, XS_WRITE, XS_MKDIR, XS_RM, XS_SETP, XS_GETP = 10, 11, 12, 13, 5, 3
put('xs-wire', 'dom0-rw', b'\0' + msg(XS_WRITE, b'/a/b\0v') + msg(XS_READ, b'/a/b\0')
    + msg(XS_DIRECTORY, b'/a\0') + msg(XS_RM, b'/a\0'))
put('xs-wire', 'dom0-watch', b'\0' + msg(XS_WATCH, b'/x\0tok\0') + msg(XS_MKDIR, b'/x/y\0')
    + msg(XS_SETP, b'/x/y\0n0\0r1\0') + msg(XS_GETP, b'/x/y\0'))
put('xs-wire', 'dom0-tx', b'\0' + msg(XS_TS, b'\0') + msg(XS_WRITE, b'/t\01', tx=1)
    + msg(XS_TE, b'T\0', tx=1))
put('xs-wire', 'guest', b'\x01' + msg(XS_GDP, b'1\0') + msg(XS_WRITE, b'data/k\0v')
    + msg(XS_READ, b'/local/domain/0\0'))
put('xs-wire', 'introduce', b'\0' + msg(XS_INTRO, b'2\0' + b'0\0' + b'1\0'))

put('ctl', 'list', b'{"version":1,"command":"list"}\n')
put('ctl', 'stats', b'{"version":1,"command":"stats"}')
put('ctl', 'show', b'{"version":1,"command":"show","domid":1,"device":"51712"}\n'
    b'{"version":1,"command":"detach","domid":1,"device":"xvda","force":true}')
put('ctl', 'check-target', b'{"version":1,"command":"check-target","target":"/nonexistent","mode":"r"}')
put('ctl', 'bad', b'{"version":2}\n[1,2]\n{"version":1}\nnot json')
