#!/usr/bin/python3
"""Fixture helper for the backup/restore integration tests (root only).

  ur-fixture.py make-tree ROOT [--files N] [--usrlocal-dir REL]
      An SNO-like host tree under ROOT: /etc, /usr/local, /var/lib/kubelet full of
      nasty names (spaces, newlines, tabs, non-UTF-8 bytes, '%', ',', '=', a leading
      dash, a path longer than PATH_MAX) and every metadata kind (setuid/setgid/
      sticky and 0000 modes, owners, ns mtimes incl. before 1970, hard links across
      directories, relative/absolute/dangling symlinks, a sparse file, a fifo, a
      socket, char and block devices, ACLs incl. default ACLs, security.selinux on
      everything, security.capability, trusted.* and user.* xattrs with binary and
      empty values). --usrlocal-dir puts /usr/local's content in ROOT/REL and leaves
      ROOT/usr/local for the caller to make a symlink.
  ur-fixture.py digest DIR [--strict] [--exclude REL]... [--list FILE]
      sha256 over everything ur-tree-compare compares (and with --strict inode
      numbers and ctimes too, so any write shows), printed on stdout.
  ur-fixture.py change-some ROOT PERCENT LIST
      Rewrite PERCENT % of the regular files (deterministic choice, new content,
      new mtime); write their generation paths (etc/..., usrlocal/..., kubelet/...)
      to LIST, one per line, escaped like ur-tree-compare.
  ur-fixture.py shared GEN1 GEN2 LIST
      Every regular file of GEN2 not named in LIST must be the same inode as in
      GEN1 (shared), every one named in LIST a different inode; prints the counts.
  ur-fixture.py fail-upgrade ROOT OUTSIDE [--usrlocal REL]
      Play a failed upgrade on a make-tree tree: changed, added, deleted,
      re-permissioned, re-owned, relabelled files; a file and a directory replaced
      by symlinks pointing into OUTSIDE (a directory outside the root), a directory
      replaced by a file, a file by a directory, a hard link broken, a symlink
      retargeted, a fifo replaced by a file, a device renumbered, an ACL removed,
      a file in the /etc exclude list changed. Prints what it did.
"""
import errno
import hashlib
import os
import random
import socket
import stat
import subprocess
import sys

TREES = [("etc", "etc"), ("usrlocal", "usr/local"), ("kubelet", "var/lib/kubelet")]


def esc(b):
    out = []
    for c in b:
        if c < 0x21 or c > 0x7E or c == 0x5C:
            out.append("\\x%02x" % c)
        else:
            out.append(chr(c))
    return "".join(out)


def label(t):
    return ("system_u:object_r:%s:s0" % t).encode() + b"\0"


class Maker:
    """Creates entries relative to a directory fd and remembers them, so that
    owners, labels and times can be applied last (deepest first)."""

    def __init__(self, root):
        self.root = root
        self.entries = []  # (dirfd-opener path bytes list, name bytes)
        self.rng = random.Random(42)
        self.n = 0

    # Paths are lists of byte components relative to ROOT so that paths longer
    # than PATH_MAX never reach a system call whole.
    def opendir(self, comps):
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        for c in comps:
            nfd = os.open(c, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return fd

    def mkdir(self, comps, mode=0o755):
        fd = self.opendir(comps[:-1])
        try:
            os.mkdir(comps[-1], mode, dir_fd=fd)
        except FileExistsError:
            pass
        finally:
            os.close(fd)
        self.entries.append(list(comps))

    def makedirs(self, path):
        comps = [c for c in path.split(b"/") if c]
        for i in range(1, len(comps) + 1):
            self.mkdir(comps[:i])
        return comps

    def write(self, comps, data, mode=0o644):
        fd = self.opendir(comps[:-1])
        try:
            f = os.open(comps[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode, dir_fd=fd)
            os.write(f, data)
            os.close(f)
        finally:
            os.close(fd)
        self.entries.append(list(comps))

    def symlink(self, comps, target):
        fd = self.opendir(comps[:-1])
        try:
            os.symlink(target, comps[-1], dir_fd=fd)
        finally:
            os.close(fd)
        self.entries.append(list(comps))

    def link(self, src, dst):
        a = self.opendir(src[:-1])
        b = self.opendir(dst[:-1])
        try:
            os.link(src[-1], dst[-1], src_dir_fd=a, dst_dir_fd=b, follow_symlinks=False)
        finally:
            os.close(a)
            os.close(b)
        self.entries.append(list(dst))

    def mknod(self, comps, mode, dev=0):
        fd = self.opendir(comps[:-1])
        try:
            os.mknod(comps[-1], mode, dev, dir_fd=fd)
        finally:
            os.close(fd)
        self.entries.append(list(comps))

    def socket(self, comps):
        fd = self.opendir(comps[:-1])
        old = os.open(".", os.O_RDONLY)
        try:
            os.fchdir(fd)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(comps[-1])
            s.close()
        finally:
            os.fchdir(old)
            os.close(old)
            os.close(fd)
        self.entries.append(list(comps))

    def at(self, comps, fn):
        """Run fn(name) with the cwd in the entry's directory (for l*xattr, which take no dir fd)."""
        fd = self.opendir(comps[:-1])
        old = os.open(".", os.O_RDONLY)
        try:
            os.fchdir(fd)
            return fn(comps[-1])
        finally:
            os.fchdir(old)
            os.close(old)
            os.close(fd)

    def setx(self, comps, name, value):
        self.at(comps, lambda n: os.setxattr(n, name, value, follow_symlinks=False))

    def chown(self, comps, uid, gid):
        fd = self.opendir(comps[:-1])
        try:
            os.chown(comps[-1], uid, gid, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)

    def chmod(self, comps, mode):
        fd = self.opendir(comps[:-1])
        try:
            os.chmod(comps[-1], mode, dir_fd=fd)
        finally:
            os.close(fd)

    def utime(self, comps, ns):
        fd = self.opendir(comps[:-1])
        try:
            os.utime(comps[-1], ns=(ns, ns), dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)

    def finish(self, labels=True):
        """Labels on everything, then mtimes deepest first so directories keep theirs."""
        seen = set()
        uniq = []
        for e in self.entries:
            k = tuple(e)
            if k not in seen:
                seen.add(k)
                uniq.append(e)
        if labels:
            types = [b"etc_t", b"bin_t", b"container_file_t", b"kubelet_var_lib_t"]
            for i, e in enumerate(uniq):
                try:
                    self.setx(e, "security.selinux", label(types[i % len(types)].decode()))
                except OSError as ex:
                    if ex.errno not in (errno.EOPNOTSUPP,):
                        raise
        for i, e in enumerate(sorted(uniq, key=lambda e: -len(e))):
            self.n += 1
            ns = (1600000000 + i * 3607) * 10**9 + (i * 7919 + 13) % 10**9
            self.utime(e, ns)


def make_tree(root, files, usrlocal_dir):
    root = os.fsencode(root)
    os.makedirs(root, exist_ok=True)
    m = Maker(root)
    rng = random.Random(1)
    for _, host in TREES:
        m.makedirs(host.encode())
    if usrlocal_dir:
        m.makedirs(usrlocal_dir.encode())
        ul = usrlocal_dir.encode()
        # the symlink is the caller's job; a placeholder is removed here
        fd = m.opendir([b"usr"])
        os.rmdir(b"local", dir_fd=fd)
        os.close(fd)
        m.entries = [e for e in m.entries if e != [b"usr", b"local"]]
    else:
        ul = b"usr/local"

    # ---------------------------------------------------------------- /etc
    E = m.makedirs(b"etc")
    for d in [b"sysconfig", b"systemd/system/multi-user.target.wants", b"kubernetes/manifests",
              b"kubernetes/static-pod-resources", b"pki/tls", b"NetworkManager/system-connections",
              b"machine-config-daemon", b"tmpfiles.d"]:
        m.makedirs(b"etc/" + d)
    m.write(E + [b"hostname"], b"sno-node-0\n")
    m.write(E + [b"hosts"], b"127.0.0.1 localhost\n::1 localhost\n")
    m.write(E + [b"kubernetes", b"manifests", b"etcd-pod.yaml"], b"kind: Pod\nname: etcd\n" * 20)
    m.write(E + [b"kubernetes", b"manifests", b"kube-apiserver-pod.yaml"], b"kind: Pod\n" * 30)
    m.write(E + [b".updated"], b"TIMESTAMP_NSEC=1\n")
    m.write(E + [b"tmpfiles.d", b"ur-test.conf"], b"d /etc/ur-tmpfiles-dir 0755 root root -\n")
    m.write(E + [b"systemd", b"system", b"kubelet.service"],
            b"[Unit]\nDescription=Kubernetes Kubelet\n[Service]\nExecStart=/usr/bin/kubelet\n"
            b"[Install]\nWantedBy=multi-user.target\n")
    m.symlink(E + [b"systemd", b"system", b"multi-user.target.wants", b"kubelet.service"],
              b"/etc/systemd/system/kubelet.service")
    m.write(E + [b"machine-config-daemon", b"node-annotations.json"], b'{"currentConfig":"rendered-master-1"}\n')
    # nasty names
    nasty = [b"with space", b"new\nline", b"tab\there", b"\xff\xfe\x80non-utf8", b"-leading-dash",
             b"percent%41,comma=eq", b"caf\xc3\xa9", b" lead and trail ", b"\x01\x1f\x7fctl", b"a" * 255,
             b"dots...", b"-", b"%", b"quote'\"\\back"]
    for i, n in enumerate(nasty):
        m.write(E + [n], b"content of %d\n" % i + n)
    m.makedirs(b"etc/dir with space/sub\ndir")
    m.write(E + [b"dir with space", b"sub\ndir", b"f\xff"], b"deep nasty\n")
    # modes and owners
    m.makedirs(b"etc/modes")
    for mode in [0o4755, 0o2755, 0o1777, 0o6711, 0o0000, 0o0600, 0o0444, 0o0777, 0o7777]:
        p = E + [b"modes", b"m%04o" % mode]
        m.write(p, b"mode %o\n" % mode)
        m.chown(p, 1000 + mode % 97, 2000 + mode % 89)
        m.chmod(p, mode)
    m.mkdir(E + [b"modes", b"sticky-dir"], 0o1777)
    m.chmod(E + [b"modes", b"sticky-dir"], 0o1777)
    m.mkdir(E + [b"modes", b"setgid-dir"])
    m.chown(E + [b"modes", b"setgid-dir"], 0, 4242)
    m.chmod(E + [b"modes", b"setgid-dir"], 0o2775)
    m.write(E + [b"modes", b"setgid-dir", b"inner"], b"x")
    m.mkdir(E + [b"modes", b"readonly-dir"])
    m.write(E + [b"modes", b"readonly-dir", b"inside"], b"in a 0500 directory\n")
    m.chmod(E + [b"modes", b"readonly-dir"], 0o500)
    m.write(E + [b"modes", b"nobody"], b"owned by nobody\n")
    m.chown(E + [b"modes", b"nobody"], 65534, 65534)
    m.write(E + [b"modes", b"bigid"], b"owned by a large id\n")
    m.chown(E + [b"modes", b"bigid"], 4000000000, 3000000000)
    # hard links across directories (a group of three, one with a nasty name)
    m.makedirs(b"etc/hl/a")
    m.makedirs(b"etc/hl/b")
    m.write(E + [b"hl", b"a", b"one"], b"hard linked content\n" * 10)
    m.link(E + [b"hl", b"a", b"one"], E + [b"hl", b"b", b"two"])
    m.link(E + [b"hl", b"a", b"one"], E + [b"hl", b"three\nnasty"])
    m.write(E + [b"hl", b"pair-1"], b"second group\n")
    m.link(E + [b"hl", b"pair-1"], E + [b"hl", b"a", b"pair-2"])
    # symlinks
    m.makedirs(b"etc/links")
    m.symlink(E + [b"links", b"relative"], b"../hosts")
    m.symlink(E + [b"links", b"absolute"], b"/etc/hostname")
    m.symlink(E + [b"links", b"dangling"], b"/nonexistent/target")
    m.symlink(E + [b"links", b"to-dir"], b"../hl")
    m.symlink(E + [b"links", b"nasty target"], b"target with space\nand newline \xff")
    m.symlink(E + [b"links", b"dash"], b"-")
    m.symlink(E + [b"links", b"self"], b"self")
    m.chown(E + [b"links", b"relative"], 123, 456)
    # special files
    m.makedirs(b"etc/special")
    m.mknod(E + [b"special", b"fifo"], stat.S_IFIFO | 0o620)
    m.mknod(E + [b"special", b"null-like"], stat.S_IFCHR | 0o666, os.makedev(1, 3))
    # the largest device number XFS can store (9-bit major, 18-bit minor)
    m.mknod(E + [b"special", b"big-dev"], stat.S_IFCHR | 0o600, os.makedev(511, 262143))
    m.mknod(E + [b"special", b"loop-like"], stat.S_IFBLK | 0o660, os.makedev(7, 200))
    m.socket(E + [b"special", b"sock"])
    m.chown(E + [b"special", b"fifo"], 5, 6)
    # xattrs of every namespace
    m.makedirs(b"etc/xattrs")
    xf = E + [b"xattrs", b"file"]
    m.write(xf, b"xattr carrier\n")
    m.setx(xf, "user.binary", bytes(range(256)))
    m.setx(xf, "user.empty", b"")
    m.setx(xf, "user.with,comma=eq%", b"v,a=l%ue \n")
    m.setx(xf, "user.big", bytes(rng.getrandbits(8) for _ in range(3000)))
    m.setx(xf, "trusted.overlay.opaque", b"y")
    m.write(E + [b"xattrs", b"empty-only"], b"")
    m.setx(E + [b"xattrs", b"empty-only"], "user.e", b"")
    m.mkdir(E + [b"xattrs", b"dir"])
    m.setx(E + [b"xattrs", b"dir"], "user.dirattr", b"\x00\x01\x02")
    # ACLs (setfacl, short paths) including a default ACL
    m.makedirs(b"etc/acl")
    m.write(E + [b"acl", b"file"], b"acl file\n")
    m.makedirs(b"etc/acl/dir")
    m.write(E + [b"acl", b"dir", b"inherits"], b"inherits default acl?\n")
    rootp = root.decode(errors="surrogateescape")
    subprocess.check_call(["setfacl", "-m", "u:1234:rwx,g:2345:r,m::rwx", rootp + "/etc/acl/file"])
    subprocess.check_call(["setfacl", "-m", "u:1234:rx", "-d", "-m", "u:1234:rx,g:99:r", rootp + "/etc/acl/dir"])
    # empty file, empty dir
    m.write(E + [b"empty"], b"")
    m.makedirs(b"etc/empty-dir")
    # a path longer than PATH_MAX (4096): 20 levels of 240-byte names
    d = E + [b"deep"]
    m.mkdir(d)
    for i in range(20):
        d = d + [(b"%02d-" % i) + b"L" * 236]
        m.mkdir(d)
    m.write(d + [b"bottom file"], b"more than PATH_MAX below /\n")
    m.setx(d + [b"bottom file"], "user.deep", b"yes")
    m.symlink(d + [b"bottom link"], b"../" * 3 + b"x")
    plen = len(b"/".join(d + [b"bottom file"]))
    assert plen > 4096, plen

    # ---------------------------------------------------------------- /usr/local
    U = m.makedirs(ul)
    m.makedirs(ul + b"/bin")
    m.makedirs(ul + b"/lib/etcd-scripts")
    tool = U + [b"bin", b"tool"]
    m.write(tool, bytes(rng.getrandbits(8) for _ in range(3 << 20)), 0o755)  # 3 MiB, several copy chunks
    # file capability (cap_net_raw, effective): cleared by chown, so it must be applied after it
    m.setx(tool, "security.capability", bytes([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
    m.write(U + [b"bin", b"cluster-restore.sh"], b"#!/bin/sh\necho restore \"$@\"\n", 0o755)
    m.write(U + [b"bin", b"cluster-backup.sh"], b"#!/bin/sh\necho backup\n", 0o755)
    m.write(U + [b"lib", b"etcd-scripts", b"etcd-common-tools"], b"# tools\n")
    m.write(U + [b"bin", b"setuid-helper"], b"#!/bin/sh\n", 0o755)
    m.chmod(U + [b"bin", b"setuid-helper"], 0o4711)
    # sparse: 64 MiB with three small data islands, and one that is all hole
    sp = U + [b"sparse.img"]
    fd = m.opendir(U)
    f = os.open(b"sparse.img", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd)
    os.pwrite(f, b"head" * 1024, 0)
    os.pwrite(f, b"\x01middle" * 512, 20 << 20)
    os.pwrite(f, b"tail" * 1024, (64 << 20) - 4096)
    os.close(f)
    f = os.open(b"all-hole", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=fd)
    os.ftruncate(f, 10 << 20)
    os.close(f)
    os.close(fd)
    m.entries.append(sp)
    m.entries.append(U + [b"all-hole"])

    # ---------------------------------------------------------------- /var/lib/kubelet
    K = m.makedirs(b"var/lib/kubelet")
    m.makedirs(b"var/lib/kubelet/pki")
    m.write(K + [b"config.yaml"], b"kind: KubeletConfiguration\n" * 10)
    m.write(K + [b"pki", b"kubelet-client-current.pem"], b"-----BEGIN CERTIFICATE-----\n" * 5, 0o600)
    m.makedirs(b"var/lib/kubelet/pods")
    for p in range(max(1, files // 10)):
        pd = b"var/lib/kubelet/pods/%08x-%04x-pod" % (p * 2654435761 & 0xFFFFFFFF, p)
        P = m.makedirs(pd + b"/volumes/kubernetes.io~configmap/cm")
        m.makedirs(pd + b"/containers/c")
        for j in range(10):
            m.write(P + [b"key-%d" % j], (b"pod %d file %d " % (p, j)) * (1 + (p * 10 + j) % 50))
        m.write(K + [b"pods", pd.split(b"/")[-1], b"containers", b"c", b"log"], b"x" * (p % 7))
        m.setx(P + [b"key-0"], "user.pod", b"%d" % p)
    # a hard link group inside kubelet as well
    m.write(K + [b"pods", b"shared-a"], b"shared between pods\n")
    m.link(K + [b"pods", b"shared-a"], K + [b"config-link"])
    # the mount point for a tmpfs (the test mounts it: W16)
    m.makedirs(b"var/lib/kubelet/pods/mounted/volumes/kubernetes.io~secret/token")

    # special times: before 1970 and after 2038, on files
    m.finish()
    m.utime(E + [b"hosts"], -86400 * 365 * 10 * 10**9 + 500000000)  # 1960, with ns
    m.utime(E + [b"hostname"], 4102444800 * 10**9 + 999999999)  # 2100
    m.utime(E + [b"links", b"dangling"], 1234567890 * 10**9 + 1)
    # the directories holding those lost nothing: set their times again
    m.utime(E + [b"links"], 1500000000 * 10**9 + 42)
    m.utime(E, 1500000001 * 10**9 + 43)


# ------------------------------------------------------------------- digest

def digest(top, strict, excludes, listfile):
    h = hashlib.sha256()
    lines = []
    top_fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    old = os.open(".", os.O_RDONLY)

    def xattrs(dirfd, name):
        os.fchdir(dirfd)
        try:
            names = sorted(os.listxattr(name, follow_symlinks=False))
        except OSError as ex:
            if ex.errno == errno.EOPNOTSUPP:
                return []
            raise
        out = []
        for n in names:
            if n in ("trusted.SGI_ACL_FILE", "trusted.SGI_ACL_DEFAULT"):
                continue
            out.append(n + "=" + os.getxattr(name, n, follow_symlinks=False).hex())
        return out

    def entry(dirfd, name, rel):
        if rel in excludes:
            return
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        f = [esc(rel), "%o" % st.st_mode, str(st.st_uid), str(st.st_gid), str(st.st_mtime_ns)]
        if strict:
            f += [str(st.st_ino), str(st.st_ctime_ns), str(st.st_nlink)]
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            f.append("rdev=%d" % st.st_rdev)
        if stat.S_ISLNK(st.st_mode):
            f.append("->" + esc(os.readlink(name, dir_fd=dirfd)))
        if stat.S_ISREG(st.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dirfd)
            hh = hashlib.sha256()
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                hh.update(b)
            os.close(fd)
            f.append("size=%d sha=%s" % (st.st_size, hh.hexdigest()))
        if stat.S_ISDIR(st.st_mode):
            cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dirfd)
            f += xattrs(cfd, ".")
            lines.append(" ".join(f))
            for n in sorted(os.fsencode(x) for x in os.listdir(cfd)):
                entry(cfd, n, os.path.join(rel, n) if rel else n)
            os.close(cfd)
        else:
            f += xattrs(dirfd, name)
            lines.append(" ".join(f))

    try:
        entry(top_fd, ".", b"")
    finally:
        os.fchdir(old)
    for l in lines:
        h.update(l.encode() + b"\n")
    if listfile:
        with open(listfile, "w") as out:
            out.write("\n".join(lines) + "\n")
    print(h.hexdigest())


# ------------------------------------------------------------------- 1% change

def walk_files(root):
    """(generation path, host path) of every regular file in the three trees, sorted."""
    out = []
    for gen, host in TREES:
        base = os.path.join(root, host.encode())
        if not os.path.isdir(base):
            continue
        for dp, dns, fns in os.walk(base):
            dns.sort()
            for fn in sorted(fns):
                p = os.path.join(dp, fn)
                if len(p) > 3500:
                    continue
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode):
                    out.append((gen.encode() + p[len(base):], p))
    return out


def change_some(root, percent, listfile):
    files = walk_files(os.fsencode(root))
    # Single-link files only: a hard-linked one would change several names.
    files = [f for f in files if os.lstat(f[1]).st_nlink == 1 and os.lstat(f[1]).st_size < (1 << 20)
             and b"upgrade-recovery" not in f[0]]
    rng = random.Random(7)
    n = max(2, len(files) * percent // 100)
    chosen = sorted(rng.sample(files, n))
    with open(listfile, "w") as out:
        for gen, p in chosen:
            with open(p, "ab") as f:
                f.write(b"changed for the second generation\n")
            out.write(esc(gen) + "\n")
    print("changed %d of %d files" % (n, len(files)))


def shared(gen1, gen2, listfile):
    changed = set(l.rstrip("\n") for l in open(listfile) if l.strip())
    gen1, gen2 = os.fsencode(gen1), os.fsencode(gen2)
    ok = bad = same_changed = 0
    errors = []
    seen = set()
    for gen, _ in TREES:
        base = os.path.join(gen2, gen.encode())
        for dp, dns, fns in os.walk(base):
            for fn in fns:
                p2 = os.path.join(dp, fn)
                if len(p2) > 3500:
                    continue
                st2 = os.lstat(p2)
                # Files, symlinks, devices, fifos, sockets: all shared when unchanged.
                if stat.S_ISDIR(st2.st_mode):
                    continue
                rel = p2[len(gen2) + 1:]
                p1 = os.path.join(gen1, rel)
                try:
                    st1 = os.lstat(p1)
                except FileNotFoundError:
                    errors.append("not in the first generation: " + esc(rel))
                    continue
                if esc(rel) in changed:
                    seen.add(esc(rel))
                    if st1.st_ino == st2.st_ino:
                        same_changed += 1
                        errors.append("changed entry shares its inode with the previous generation: " + esc(rel))
                elif st1.st_ino == st2.st_ino:
                    ok += 1
                else:
                    bad += 1
                    errors.append("unchanged file was copied, not shared: " + esc(rel))
    for c in sorted(changed - seen):
        errors.append("changed entry missing from the second generation: " + c)
    for e in errors:
        print("FAIL " + e)
    print("shared %d unchanged entries, %d changed entries copied, %d problems" % (ok, len(seen) - same_changed,
                                                                               len(errors)))
    return 1 if errors or ok == 0 else 0


# ------------------------------------------------------------------- failed upgrade

def fail_upgrade(root, outside, usrlocal):
    root = os.fsencode(root)
    outside = os.fsencode(outside)
    ul = os.fsencode(usrlocal) if usrlocal else b"usr/local"
    E = os.path.join(root, b"etc")
    U = os.path.join(root, ul)
    K = os.path.join(root, b"var/lib/kubelet")
    did = []

    def note(what, p):
        did.append("%-10s %s" % (what, esc(p[len(root):])))

    # content changes (size and mtime change, as an upgrade writes them)
    for p in [os.path.join(E, b"hosts"), os.path.join(E, b"new\nline"), os.path.join(U, b"bin/tool"),
              os.path.join(K, b"config.yaml"), os.path.join(E, b"hl/b/two")]:
        with open(p, "ab") as f:
            f.write(b"\nupgraded\n")
        note("changed", p)
    # added files and a directory tree
    for p in [os.path.join(E, b"added.conf"), os.path.join(U, b"bin/new-tool"), os.path.join(E, b"sysconfig/new\xff")]:
        with open(p, "wb") as f:
            f.write(b"added by the upgrade\n")
        note("added", p)
    os.makedirs(os.path.join(K, b"pods/new-pod/volumes"))
    with open(os.path.join(K, b"pods/new-pod/volumes/data"), "wb") as f:
        f.write(b"new pod\n")
    note("added", os.path.join(K, b"pods/new-pod"))
    os.symlink(b"/etc/hostname", os.path.join(E, b"added-link"))
    note("added", os.path.join(E, b"added-link"))
    # deleted
    for p in [os.path.join(E, b"with space"), os.path.join(E, b"\xff\xfe\x80non-utf8"), os.path.join(U, b"all-hole")]:
        os.unlink(p)
        note("deleted", p)
    subprocess.check_call(["rm", "-rf", os.path.join(E, b"links")])
    note("deleted", os.path.join(E, b"links"))
    # re-permissioned, re-owned
    os.chmod(os.path.join(E, b"modes/m4755"), 0o755)
    note("chmod", os.path.join(E, b"modes/m4755"))
    os.chmod(os.path.join(E, b"modes/sticky-dir"), 0o777)
    note("chmod", os.path.join(E, b"modes/sticky-dir"))
    os.chown(os.path.join(E, b"modes/nobody"), 0, 0)
    note("chown", os.path.join(E, b"modes/nobody"))
    # relabelled, xattrs changed and removed, ACL removed
    os.setxattr(os.path.join(E, b"hostname"), "security.selinux", label("unlabeled_t"))
    note("relabel", os.path.join(E, b"hostname"))
    os.setxattr(os.path.join(E, b"acl"), "security.selinux", label("tmp_t"))
    note("relabel", os.path.join(E, b"acl"))
    os.setxattr(os.path.join(E, b"xattrs/file"), "user.binary", b"replaced")
    os.removexattr(os.path.join(E, b"xattrs/file"), "user.empty")
    os.setxattr(os.path.join(E, b"xattrs/file"), "user.added", b"by the upgrade")
    note("xattrs", os.path.join(E, b"xattrs/file"))
    subprocess.check_call(["setfacl", "-b", os.path.join(E, b"acl/file")])
    note("acl", os.path.join(E, b"acl/file"))
    # mtime only (a restore must put it back even though the content is equal)
    os.utime(os.path.join(K, b"pki/kubelet-client-current.pem"), ns=(1, 1))
    note("mtime", os.path.join(K, b"pki/kubelet-client-current.pem"))
    # a file replaced by a symlink pointing outside the root (restore must not write through it)
    p = os.path.join(E, b"machine-config-daemon/node-annotations.json")
    os.unlink(p)
    os.symlink(os.path.join(outside, b"target-file"), p)
    note("->outside", p)
    # a directory replaced by a symlink to a directory outside the root
    p = os.path.join(E, b"pki")
    subprocess.check_call(["rm", "-rf", p])
    os.symlink(os.path.join(outside, b"target-dir"), p)
    note("->outside", p)
    # a directory replaced by a file, a file by a directory
    p = os.path.join(E, b"dir with space")
    subprocess.check_call(["rm", "-rf", p])
    with open(p, "wb") as f:
        f.write(b"was a directory\n")
    note("dir->file", p)
    p = os.path.join(E, b"percent%41,comma=eq")
    os.unlink(p)
    os.makedirs(os.path.join(p, b"sub"))
    with open(os.path.join(p, b"sub/f"), "wb") as f:
        f.write(b"x")
    note("file->dir", p)
    # a hard link broken: same content and mtime, but its own inode now
    p = os.path.join(E, b"hl/a/pair-2")
    st = os.lstat(p)
    data = open(p, "rb").read()
    os.unlink(p)
    with open(p, "wb") as f:
        f.write(data)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    note("unlinked", p)
    # special files
    p = os.path.join(E, b"special/fifo")
    os.unlink(p)
    with open(p, "wb") as f:
        f.write(b"not a fifo\n")
    note("fifo->file", p)
    p = os.path.join(E, b"special/null-like")
    os.unlink(p)
    os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 5))
    note("rdev", p)
    # symlinked /usr/local content: a change there must be restored there
    p = os.path.join(U, b"lib/etcd-scripts/etcd-common-tools")
    with open(p, "ab") as f:
        f.write(b"# upgraded\n")
    note("changed", p)
    # in the /etc exclude list: the restore leaves these alone
    p = os.path.join(E, b"kubernetes/manifests/etcd-pod.yaml")
    with open(p, "ab") as f:
        f.write(b"# new revision\n")
    note("excluded", p)
    with open(os.path.join(E, b"kubernetes/manifests/new-pod.yaml"), "wb") as f:
        f.write(b"kind: Pod\n")
    note("excluded", os.path.join(E, b"kubernetes/manifests/new-pod.yaml"))
    for d in did:
        print(d)


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        return 2
    cmd = a.pop(0)
    if cmd == "make-tree":
        root = a.pop(0)
        files, uld = 300, None
        while a:
            o = a.pop(0)
            if o == "--files":
                files = int(a.pop(0))
            elif o == "--usrlocal-dir":
                uld = a.pop(0)
            else:
                raise SystemExit("unknown option " + o)
        make_tree(root, files, uld)
        return 0
    if cmd == "digest":
        top = a.pop(0)
        strict, excl, listfile = False, set(), None
        while a:
            o = a.pop(0)
            if o == "--strict":
                strict = True
            elif o == "--exclude":
                excl.add(os.fsencode(a.pop(0)))
            elif o == "--list":
                listfile = a.pop(0)
            else:
                raise SystemExit("unknown option " + o)
        digest(os.fsencode(top), strict, excl, listfile)
        return 0
    if cmd == "change-some":
        change_some(a[0], int(a[1]), a[2])
        return 0
    if cmd == "shared":
        return shared(a[0], a[1], a[2])
    if cmd == "fail-upgrade":
        root, outside = a[0], a[1]
        ul = None
        if len(a) > 3 and a[2] == "--usrlocal":
            ul = a[3]
        fail_upgrade(root, outside, ul)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
