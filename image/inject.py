#!/usr/bin/env python3
"""Inject firmware-agent into a Raspberry Pi OS (Lite, arm64) disk image.

Runs unprivileged: no loop devices, no mounting.  The MBR partition table is
parsed here; the FAT boot partition is written with mtools (``mcopy -i
img@@offset``) and the ext4 root partition with e2fsprogs (``debugfs -w
'img?offset=N'``), both directly inside a private copy of the image.

The input image is never opened for writing: the tool decompresses/copies it
to a temporary file next to the output, modifies and verifies that copy, and
renames it onto the output path only when everything succeeded.

Usage (see image/README.md):

    image/inject.py BASE.img[.xz] path/to/firmware-agent -o out.img \\
        --device-id pi5-0001 --broker-url mqtts://broker.example:8883 \\
        --username pi5-0001 --password secret --ca-file ca.pem

Exit status: 0 on success, 1 on a runtime failure, 2 on bad input/usage.
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OVERLAY = REPO / "buildroot-overlay" / "board" / "raspberrypi5" / "rootfs-overlay"
DEFAULT_CONFIG = OVERLAY / "etc" / "firmware-agent" / "agent.toml"
DEFAULT_INIT_SCRIPT = OVERLAY / "etc" / "init.d" / "S99firmware-agent"
DEFAULT_UNIT = REPO / "packaging" / "firmware-agent.service"

AGENT_PATH = "/usr/bin/firmware-agent"
CONFIG_PATH = "/etc/firmware-agent/agent.toml"
UNIT_DIR = "/etc/systemd/system"
UNIT_NAME = "firmware-agent.service"
WANTS_DIR = "/etc/systemd/system/multi-user.target.wants"
INIT_SCRIPT_PATH = "/etc/init.d/S99firmware-agent"
CARD_NAME = "firmware-agent.toml"          # on the FAT partition root
CARD_CA_NAME = "firmware-agent-ca.pem"     # on the FAT partition root
CARD_MOUNT = "/boot/firmware"              # where Raspberry Pi OS mounts it

SECTOR = 512
FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E}
LINUX_TYPE = 0x83
EM_AARCH64 = 183
MARGIN = 1 << 20  # keep 1 MiB free on each filesystem after injection


class InputError(Exception):
    """Bad input: exit status 2."""


class InjectError(Exception):
    """Runtime failure: exit status 1."""


def log(msg: str) -> None:
    print(f"inject: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------
# Partition table
# --------------------------------------------------------------------------
@dataclass
class Partition:
    index: int  # 1-based
    ptype: int
    start: int  # bytes
    size: int  # bytes

    @property
    def end(self) -> int:
        return self.start + self.size


def parse_mbr(path: Path, label: str | None = None) -> list[Partition]:
    size = path.stat().st_size
    name = label or str(path)
    with path.open("rb") as f:
        head = f.read(SECTOR * 2)
    if len(head) < SECTOR:
        raise InputError(f"{name}: {size} bytes, too small to be a disk image")
    if head[510:512] != b"\x55\xaa":
        raise InputError(f"{name}: not a disk image (no MBR boot signature 0x55AA)")
    if head[512:520] == b"EFI PART":
        raise InputError(f"{name}: GPT-partitioned; Raspberry Pi OS images use MBR")
    parts = []
    for i in range(4):
        e = head[446 + 16 * i: 446 + 16 * (i + 1)]
        status, ptype = e[0], e[4]
        lba, count = struct.unpack_from("<II", e, 8)
        if status not in (0x00, 0x80):
            raise InputError(f"{name}: not a disk image (invalid MBR entry {i + 1})")
        if ptype == 0 or count == 0:
            continue
        if ptype == 0xEE:
            raise InputError(f"{name}: GPT protective MBR; Raspberry Pi OS images use MBR")
        parts.append(Partition(i + 1, ptype, lba * SECTOR, count * SECTOR))
    if not parts:
        raise InputError(f"{name}: MBR has no partitions")
    for p in parts:
        if p.end > size:
            raise InputError(
                f"{name}: image truncated: partition {p.index} ends at byte {p.end} "
                f"but the image is only {size} bytes")
    return parts


def find_partitions(path: Path, parts: list[Partition],
                    label: str | None = None) -> tuple[Partition, Partition]:
    name = label or str(path)
    boot = next((p for p in parts if p.ptype in FAT_TYPES), None)
    if boot is None:
        raise InputError(f"{name}: no FAT boot partition (type 0x0b/0x0c) in the MBR")
    root = next((p for p in parts if p.ptype == LINUX_TYPE and p.index != boot.index), None)
    if root is None:
        raise InputError(f"{name}: no Linux root partition (type 0x83) in the MBR")
    with path.open("rb") as f:
        f.seek(boot.start)
        bs = f.read(SECTOR)
        f.seek(root.start + 1024)
        sb = f.read(1024)
    if len(bs) < SECTOR or bs[510:512] != b"\x55\xaa" or not (
            bs[0x36:0x39] == b"FAT" or bs[0x52:0x55] == b"FAT"):
        raise InputError(f"{name}: partition {boot.index} is not a FAT filesystem")
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 56)[0] != 0xEF53:
        raise InputError(f"{name}: partition {root.index} is not an ext2/3/4 filesystem")
    return boot, root


# --------------------------------------------------------------------------
# Agent binary
# --------------------------------------------------------------------------
def check_agent(path: Path) -> None:
    with path.open("rb") as f:
        head = f.read(64)
        if head[:2] == b"#!":
            log(f"warning: {path} is a script, not an ELF binary (test stand-in?)")
            return
        if head[:4] != b"\x7fELF":
            raise InputError(f"{path}: agent is not an ELF executable")
        if head[4] != 2 or head[5] != 1:
            raise InputError(f"{path}: agent is not a 64-bit little-endian ELF")
        (machine,) = struct.unpack_from("<H", head, 18)
        if machine != EM_AARCH64:
            raise InputError(f"{path}: agent is built for ELF machine {machine}, not aarch64 "
                             "(build with --target aarch64-unknown-linux-musl)")
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            (ptype,) = struct.unpack("<I", f.read(4))
            if ptype == 3:  # PT_INTERP
                raise InputError(f"{path}: agent is dynamically linked; the image needs the "
                                 "static musl build (aarch64-unknown-linux-musl)")


# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------
def run(cmd: list[str], *, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, env=env)
    except FileNotFoundError as e:
        raise InjectError(f"missing tool {cmd[0]!r}: install e2fsprogs and mtools") from e
    if check and cp.returncode != 0:
        raise InjectError(f"{' '.join(cmd)} failed ({cp.returncode}): "
                          f"{(cp.stderr or cp.stdout).strip()}")
    return cp


def debugfs_errors(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines()
            if l.strip() and not l.startswith("debugfs ") and "Allocated inode" not in l]


class Ext4:
    """Operations on an ext4 filesystem at a byte offset inside an image file."""

    def __init__(self, image: Path, offset: int):
        self.dev = f"{image}?offset={offset}"

    def query(self, request: str) -> subprocess.CompletedProcess:
        return run(["debugfs", "-R", request, self.dev], check=False)

    def exists(self, path: str) -> bool:
        cp = self.query(f"stat {path}")
        return cp.returncode == 0 and "Inode:" in cp.stdout

    def is_symlink(self, path: str) -> bool:
        cp = self.query(f"stat {path}")
        return "Type: symlink" in cp.stdout

    def header(self) -> dict[str, str]:
        cp = run(["dumpe2fs", "-h", self.dev], check=False)
        if cp.returncode != 0:
            raise InputError(f"root filesystem unreadable: {cp.stderr.strip()}")
        out = {}
        for line in cp.stdout.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                out[k.strip()] = v.strip()
        return out

    def script(self, commands: list[str]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".debugfs", delete=False) as f:
            f.write("\n".join(commands) + "\n")
            name = f.name
        try:
            cp = run(["debugfs", "-w", "-f", name, self.dev], check=False)
        finally:
            os.unlink(name)
        errs = debugfs_errors(cp.stderr)
        if cp.returncode != 0 or errs:
            raise InjectError("debugfs failed on the root filesystem:\n  " + "\n  ".join(
                errs or [cp.stderr.strip()]))

    def read(self, path: str, dest: Path) -> bytes:
        if dest.exists():
            dest.unlink()
        self.query(f"dump {path} {dest}")
        return dest.read_bytes() if dest.exists() else b""

    def fsck(self) -> None:
        cp = run(["e2fsck", "-fn", self.dev], check=False)
        if cp.returncode != 0:
            raise InjectError(f"e2fsck reports errors after injection:\n{cp.stdout}{cp.stderr}")


def mtools_env() -> dict:
    env = dict(os.environ)
    env["MTOOLS_SKIP_CHECK"] = "1"
    env.setdefault("MTOOLS_NO_VFAT", "0")
    return env


def fat_free_bytes(image: Path, offset: int) -> int:
    cp = run(["mdir", "-i", f"{image}@@{offset}", "::"], env=mtools_env(), check=False)
    m = re.search(r"([\d ]+) bytes free", cp.stdout)
    if cp.returncode != 0 or not m:
        raise InputError(f"boot partition unreadable by mtools: {cp.stderr.strip()}")
    return int(m.group(1).replace(" ", ""))


def fat_put(image: Path, offset: int, src: Path, name: str) -> None:
    target = f"{image}@@{offset}"
    run(["mcopy", "-i", target, "-o", "-D", "o", str(src), f"::{name}"], env=mtools_env())
    back = run(["mtype", "-i", target, f"::{name}"], env=mtools_env())
    if back.stdout.encode() != src.read_bytes():
        raise InjectError(f"boot partition: read-back of {name} differs from what was written")


# --------------------------------------------------------------------------
# Card template
# --------------------------------------------------------------------------
def toml_str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def card_template(a: argparse.Namespace) -> str:
    def kv(key: str, value: str | None, example: str) -> str:
        if value is None:
            return f"# {key} = {toml_str(example)}"
        return f"{key} = {toml_str(value)}"

    ca = a.ca_path if a.ca_path else (f"{CARD_MOUNT}/{CARD_CA_NAME}" if a.ca_file else None)
    lines = [
        "# firmware-agent per-card settings.",
        f"# This file lives on the FAT boot partition ({CARD_MOUNT}/{CARD_NAME} on the Pi),",
        "# so it can be edited on any computer after flashing.  Keys are the same as in",
        f"# {CONFIG_PATH}; values here override that file, and the environment",
        "# (FIRMWARE_AGENT_DEVICE_ID, FIRMWARE_AGENT_BROKER_URL) overrides both.",
        "# NOTE: FAT has no permissions; anything here is readable on the device.",
        "",
        kv("device_id", a.device_id, "pi5-0001"),
        "",
        "[mqtt]",
        "# mqtt://host:1883 for plain TCP, mqtts://host:8883 for TLS",
        kv("url", a.broker_url, "mqtts://broker.example:8883"),
        kv("username", a.username, "pi5-0001"),
        kv("password", a.password, "change-me"),
        kv("ca_file", ca, f"{CARD_MOUNT}/{CARD_CA_NAME}"),
        kv("topic_prefix", a.topic_prefix, "edge"),
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main work
# --------------------------------------------------------------------------
def copy_base(base: Path, dest_fd: int) -> None:
    """Copy or decompress BASE into dest_fd, keeping runs of zeros sparse."""
    with base.open("rb") as f:
        magic = f.read(6)
    if magic == b"\xfd7zXZ\x00":
        src = lzma.open(base, "rb")
    elif base.suffix == ".xz":
        raise InputError(f"{base}: named .xz but not xz-compressed")
    else:
        src = base.open("rb")
    chunk = 1 << 20
    zero = bytes(chunk)
    total = 0
    with src, os.fdopen(os.dup(dest_fd), "wb") as out:
        try:
            while True:
                buf = src.read(chunk)
                if not buf:
                    break
                if buf == zero[: len(buf)]:
                    out.seek(len(buf), os.SEEK_CUR)
                else:
                    out.write(buf)
                total += len(buf)
            out.truncate(total)
            out.flush()
            os.fsync(out.fileno())
        except (lzma.LZMAError, EOFError) as e:
            raise InputError(f"{base}: corrupt or truncated xz stream: {e}") from e
        except OSError as e:
            raise InjectError(f"cannot write working copy: {e.strerror}") from e


def mkdirs(fs: Ext4, path: str, cmds: list[str]) -> None:
    cur = ""
    for comp in path.strip("/").split("/"):
        cur += "/" + comp
        if fs.is_symlink(cur):
            raise InjectError(f"{cur} is a symlink in the root filesystem; refusing to write "
                              "through it")
        if f"mkdir {cur}" not in cmds and not fs.exists(cur):
            cmds.append(f"mkdir {cur}")


def put_file(fs: Ext4, cmds: list[str], src: Path, dest: str, mode: int) -> None:
    d, name = dest.rsplit("/", 1)
    mkdirs(fs, d, cmds)
    if fs.exists(dest):
        cmds.append(f"rm {dest}")
    cmds += [f"cd {d}", f"write {src} {name}", f"sif {dest} mode 0{0o100000 | mode:o}",
             f"sif {dest} uid 0", f"sif {dest} gid 0", "cd /"]


def inject(a: argparse.Namespace, work: Path) -> dict:
    parts = parse_mbr(work, str(a.base))
    boot, root = find_partitions(work, parts, str(a.base))
    log(f"boot: partition {boot.index} (type 0x{boot.ptype:02x}) at {boot.start}, "
        f"{boot.size} bytes; root: partition {root.index} at {root.start}, {root.size} bytes")

    fs = Ext4(work, root.start)
    hdr = fs.header()
    feats = hdr.get("Filesystem features", "")
    if "needs_recovery" in feats.split():
        raise InputError("root filesystem was not cleanly unmounted (journal needs recovery); "
                         "run e2fsck on it first")
    if hdr.get("Filesystem state", "clean") != "clean":
        raise InputError(f"root filesystem state is {hdr['Filesystem state']!r}; run e2fsck first")

    init = a.init
    has_systemd = fs.exists("/usr/lib/systemd/systemd") or fs.exists("/lib/systemd/systemd")
    if init == "auto":
        init = "systemd" if has_systemd else "sysv"
    log(f"init system: {init}")

    files = [(a.agent, AGENT_PATH, 0o755), (a.config, CONFIG_PATH, 0o644)]
    if init == "systemd":
        files.append((a.unit, f"{UNIT_DIR}/{UNIT_NAME}", 0o644))
    else:
        files.append((a.init_script, INIT_SCRIPT_PATH, 0o755))

    # Space: data blocks plus one indirect/extent block per file, and a margin.
    bsize = int(hdr.get("Block size", "4096"))
    free_blocks = int(hdr.get("Free blocks", "0"))
    free_inodes = int(hdr.get("Free inodes", "0"))
    need = sum((p.stat().st_size + bsize - 1) // bsize + 2 for p, _, _ in files) * bsize + MARGIN
    if free_blocks * bsize < need or free_inodes < len(files) + 8:
        raise InputError(f"no space left on the root filesystem: need {need} bytes and "
                         f"{len(files) + 8} inodes, have {free_blocks * bsize} bytes and "
                         f"{free_inodes} inodes")

    cmds: list[str] = []
    # debugfs splits its commands on blanks: stage the sources under plain names.
    with tempfile.TemporaryDirectory(prefix="inject-") as stage:
        if re.search(r"\s", stage):
            raise InjectError(f"temporary directory {stage!r} contains blanks; set TMPDIR")
        for i, (src, dest, mode) in enumerate(files):
            staged = Path(stage) / f"f{i}"
            shutil.copyfile(src, staged)
            put_file(fs, cmds, staged, dest, mode)
        if init == "systemd":
            link = f"{WANTS_DIR}/{UNIT_NAME}"
            mkdirs(fs, WANTS_DIR, cmds)
            if fs.exists(link):
                cmds.append(f"rm {link}")
            cmds += [f"cd {WANTS_DIR}", f"symlink {UNIT_NAME} {UNIT_DIR}/{UNIT_NAME}", "cd /"]
        fs.script(cmds)

    # Verify every file by reading it back, then fsck the whole filesystem.
    with tempfile.TemporaryDirectory() as td:
        for src, dest, mode in files:
            got = fs.read(dest, Path(td) / "back")
            if got != src.read_bytes():
                raise InjectError(f"root filesystem: read-back of {dest} differs "
                                  "(filesystem full?)")
    if init == "systemd":
        st = fs.query(f"stat {WANTS_DIR}/{UNIT_NAME}").stdout
        if f'Fast link dest: "{UNIT_DIR}/{UNIT_NAME}"' not in st:
            raise InjectError("enable symlink was not created")
    fs.fsck()

    # Boot partition: per-card settings (and the CA certificate, if given).
    card = card_template(a).encode()
    need = len(card) + (a.ca_file.stat().st_size if a.ca_file else 0) + 16384
    free = fat_free_bytes(work, boot.start)
    if free < need:
        raise InputError(f"no space left on the boot partition: need {need} bytes, have {free}")
    with tempfile.TemporaryDirectory() as td:
        cf = Path(td) / CARD_NAME
        cf.write_bytes(card)
        fat_put(work, boot.start, cf, CARD_NAME)
    if a.ca_file:
        fat_put(work, boot.start, a.ca_file, CARD_CA_NAME)
    return {"init": init, "boot": boot, "root": root}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Write firmware-agent into a Raspberry Pi OS arm64 image (no root needed).")
    p.add_argument("base", type=Path, help="base image (.img or .img.xz); never modified")
    p.add_argument("agent", type=Path, help="static aarch64 firmware-agent binary")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output image (.img, or .img.xz to compress)")
    p.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--device-id", help="device_id written to the per-card file")
    p.add_argument("--broker-url", help="mqtt://host:1883 or mqtts://host:8883")
    p.add_argument("--username", help="MQTT user name")
    p.add_argument("--password", help="MQTT password (stored in clear on the FAT partition)")
    p.add_argument("--ca-file", type=Path,
                   help=f"CA certificate (PEM) copied to the boot partition as {CARD_CA_NAME}")
    p.add_argument("--ca-path", help="ca_file value for the card file (default: the copied CA)")
    p.add_argument("--topic-prefix", help="MQTT topic prefix (agent default: edge)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                   help=f"default config installed as {CONFIG_PATH}")
    p.add_argument("--unit", type=Path, default=DEFAULT_UNIT, help="systemd unit to install")
    p.add_argument("--init-script", type=Path, default=DEFAULT_INIT_SCRIPT,
                   help=f"rc script installed as {INIT_SCRIPT_PATH} when there is no systemd")
    p.add_argument("--init", choices=["auto", "systemd", "sysv"], default="auto",
                   help="how the agent is started (auto: systemd if the image has it)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    tmp: Path | None = None
    try:
        for label, path in [("base image", a.base), ("agent", a.agent), ("config", a.config),
                            ("unit", a.unit), ("init script", a.init_script)] + (
                [("CA file", a.ca_file)] if a.ca_file else []):
            if not path.is_file():
                raise InputError(f"{label} {path}: no such file")
        out = a.output.resolve()
        if "?" in str(out) or "@@" in str(out):
            raise InputError(f"output path {out} must not contain '?' or '@@' "
                             "(they address offsets for debugfs/mtools)")
        if out == a.base.resolve():
            raise InputError("output must not be the base image")
        if out.exists() and not a.force:
            raise InputError(f"{out} exists (use --force to replace it)")
        if not out.parent.is_dir():
            raise InputError(f"output directory {out.parent} does not exist")
        check_agent(a.agent)
        if a.broker_url and not re.match(r"^mqtts?://[^/\s]+", a.broker_url):
            raise InputError(f"--broker-url {a.broker_url!r}: expected mqtt://host:port "
                             "or mqtts://host:port")

        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
        tmp = Path(name)
        log(f"copying {a.base} to a working copy")
        try:
            copy_base(a.base, fd)
        finally:
            os.close(fd)
        info = inject(a, tmp)

        if out.name.endswith(".xz"):
            log("compressing")
            xz_tmp = tmp.with_name(tmp.name + ".xz")
            with xz_tmp.open("wb") as f:
                cp = subprocess.run(["xz", "-T0", "-6", "-c", str(tmp)], stdout=f)
                os.fsync(f.fileno())
            if cp.returncode != 0:
                xz_tmp.unlink(missing_ok=True)
                raise InjectError("xz compression failed")
            tmp.unlink()
            tmp = xz_tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
        tmp = None
        sha = hashlib.sha256()
        with out.open("rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                sha.update(b)
        log(f"wrote {out} ({out.stat().st_size} bytes, init={info['init']}, "
            f"sha256={sha.hexdigest()})")
        return 0
    except InputError as e:
        log(f"error: {e}")
        return 2
    except InjectError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
