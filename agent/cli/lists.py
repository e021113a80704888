"""`minormodectl lists compile | info`: the DNS filter's compiled category lists.

`lists compile` exits 2 when --src is not a directory, 1 when a source cannot be read or
(with --strict) has a bad line, and when a category has no source at all (it would compile
empty and block nothing: the others are compiled, and the missing ones named; `--partial`
accepts that on purpose); `lists info` exits 2 when --out is not a directory, 1 when a
compiled list or the installed bundle's record cannot be read; its `--json` is
{"lists": [...], "bundle": {version, created, publisher, categories} or null,
"bundle_problem": why the record is unreadable, or null}.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from agent.cli.errors import BadInputError, Exit, fail, guarded
from agent.cli.output import add_json_flag, print_json
from agent.filter.bundle import BundleError, Manifest
from agent.filter.bundles import (
    DEFAULT_KEYS,
    generate_key,
    install_bundle,
    installed,
    load_private_key,
    load_trusted,
    make_bundle,
    verify_bundle,
)
from agent.filter.hashlist import HashList, ListFileError
from agent.filter.lists import (
    ALL_LISTS,
    CATEGORIES,
    CompileReport,
    ListSourceError,
    compile_all,
    compile_category,
)

DEFAULT_SOURCE = Path("/etc/minormode/lists")
DEFAULT_OUTPUT = Path("/var/lib/minormode/lists")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lists = subparsers.add_parser("lists", help="content filter lists")
    sub = lists.add_subparsers(dest="lists_command", required=True)
    comp = sub.add_parser("compile", help="compile source lists into the filter's list files")
    comp.add_argument("--src", type=Path, default=DEFAULT_SOURCE,
                      help=f"source directory (default {DEFAULT_SOURCE})")
    comp.add_argument("--out", type=Path, default=DEFAULT_OUTPUT,
                      help=f"output directory (default {DEFAULT_OUTPUT})")
    comp.add_argument("--category", choices=ALL_LISTS, help="compile only this list")
    comp.add_argument("--strict", action="store_true", help="fail on any invalid line")
    comp.add_argument("--quiet", action="store_true", help="no progress lines")
    comp.add_argument("--partial", action="store_true",
                      help="categories without a source are a warning, not an error")
    comp.set_defaults(func=guarded(run_compile))
    info = sub.add_parser("info", help="show the compiled lists")
    info.add_argument("--out", type=Path, default=DEFAULT_OUTPUT)
    add_json_flag(info)
    info.set_defaults(func=guarded(run_info))
    keygen = sub.add_parser("keygen", help="make a list key pair (the manufacturer's)")
    keygen.add_argument("--out", type=Path, required=True, help="writes OUT.key and OUT.pub")
    keygen.set_defaults(func=guarded(run_keygen))
    sign = sub.add_parser("sign", help="make a signed list bundle from source lists")
    sign.add_argument("--key", type=Path, required=True, help="the private key (OUT.key of keygen)")
    sign.add_argument("--src", type=Path, required=True, help="source lists, laid out as for compile")
    sign.add_argument("--version", type=int, required=True,
                      help="the bundle's version: larger than every earlier bundle's")
    sign.add_argument("--out", type=Path, required=True, help="the bundle directory to make")
    sign.set_defaults(func=guarded(run_sign))
    for name, helptext, func in (("verify", "check a signed list bundle", run_verify),
                                 ("install", "verify a list bundle and compile it into --out", run_install)):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("bundle", type=Path, help="the bundle directory")
        cmd.add_argument("--keys", type=Path, default=DEFAULT_KEYS,
                         help=f"trusted list keys, *.pub (default {DEFAULT_KEYS})")
        if name == "install":
            cmd.add_argument("--out", type=Path, default=DEFAULT_OUTPUT,
                             help=f"output directory (default {DEFAULT_OUTPUT})")
            cmd.add_argument("--quiet", action="store_true", help="no progress lines")
        cmd.set_defaults(func=guarded(func))


def _directory(option: str, path: Path) -> None:
    if not path.is_dir():
        raise BadInputError(f"{option} {path}: no such directory")


def run_compile(args: argparse.Namespace) -> int:
    _directory("--src", args.src)
    started = time.monotonic()
    progress = _progress(args.quiet)

    try:
        if args.category:
            if not args.src.is_dir():
                raise ListSourceError(f"{args.src}: list source directory does not exist")
            args.out.mkdir(parents=True, exist_ok=True)
            reports = [compile_category(args.src, args.out, args.category, progress, args.strict)]
        else:
            reports = compile_all(args.src, args.out, progress, args.strict)
    except (ListSourceError, OSError) as exc:
        fail(str(exc))
        return Exit.FAILED
    missing = _print_reports(reports)
    total = sum(r.written for r in reports)
    print(f"compiled {total:,} names into {args.out} in {time.monotonic() - started:.1f} s")
    if missing:
        what = (f"no source list for {', '.join(missing)} in {args.src}: a policy blocking "
                "them blocks nothing")
        if args.partial:
            print(f"warning: {what}", file=sys.stderr)
        else:
            fail(f"{what} (the others are compiled; --partial if that is intended)")
            return Exit.FAILED
    return 0


def _print_reports(reports: list[CompileReport]) -> list[str]:
    """Warn about bad source lines; the categories that had no source at all."""
    for r in reports:
        for problem in r.problems:
            print(f"warning: {problem}", file=sys.stderr)
        if r.skipped > len(r.problems):
            print(f"warning: {r.category}: {r.skipped - len(r.problems)} more invalid lines",
                  file=sys.stderr)
    return [r.category for r in reports if r.files == 0 and r.category in CATEGORIES]


def _progress(quiet: bool) -> Callable[[str], None]:
    started = time.monotonic()

    def progress(line: str) -> None:
        if not quiet:
            print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    return progress


def run_keygen(args: argparse.Namespace) -> int:
    if not args.out.parent.is_dir():
        raise BadInputError(f"--out {args.out}: no directory {args.out.parent}")
    try:
        kid = generate_key(args.out)
    except FileExistsError as exc:
        raise BadInputError(f"--out {args.out}: {exc.filename} exists; not overwritten") from None
    print(f"list key {kid}: {args.out}.key (keep it secret), {args.out}.pub "
          f"(install it in {DEFAULT_KEYS}/ on the image)")
    return 0


def run_sign(args: argparse.Namespace) -> int:
    _directory("--src", args.src)
    if args.out.exists():
        raise BadInputError(f"--out {args.out}: exists; a bundle is written to a new directory")
    if args.version < 1:
        raise BadInputError(f"--version {args.version}: must be 1 or more (and grow with each bundle)")
    try:
        manifest = make_bundle(args.src, load_private_key(args.key), args.version, args.out)
    except BundleError as exc:
        fail(str(exc))
        return Exit.FAILED
    print(f"bundle {args.out}: {_described(manifest)}")
    return 0


def _described(manifest: Manifest) -> str:
    return (f"version {manifest.version} of {manifest.created}, list key {manifest.publisher}, "
            f"{len(manifest.files)} files ({', '.join(manifest.categories())})")


def run_verify(args: argparse.Namespace) -> int:
    _directory("bundle", args.bundle)
    try:
        manifest = verify_bundle(args.bundle, load_trusted(args.keys))
    except (BundleError, OSError) as exc:
        fail(f"refused: {exc}")
        return Exit.FAILED
    print(f"bundle {args.bundle}: valid, {_described(manifest)}")
    return 0


def run_install(args: argparse.Namespace) -> int:
    _directory("bundle", args.bundle)
    try:
        manifest, reports = install_bundle(args.bundle, load_trusted(args.keys), args.out,
                                           _progress(args.quiet))
    except (BundleError, ListSourceError, OSError) as exc:
        fail(f"refused, nothing changed: {exc}")
        return Exit.FAILED
    missing = _print_reports(reports)
    print(f"installed bundle version {manifest.version} of {manifest.created} (list key "
          f"{manifest.publisher}): {sum(r.written for r in reports):,} names in {args.out}; "
          "`systemctl reload minormode-agent` puts them in force")
    if missing:
        print(f"warning: the bundle has no list for {', '.join(missing)}: a policy blocking "
              "them blocks nothing", file=sys.stderr)
    return 0


def run_info(args: argparse.Namespace) -> int:
    _directory("--out", args.out)
    status = Exit.OK
    rows: list[dict[str, object]] = []
    for name in ALL_LISTS:
        path = args.out / f"{name}.mmdl"
        row: dict[str, object] = {"list": name, "path": str(path), "state": "missing",
                                  "names": None, "bytes": None, "problem": None}
        rows.append(row)
        if not path.exists():
            continue
        try:
            hl = HashList(path)
        except ListFileError as exc:
            row.update(state="unreadable", problem=str(exc))
            status = Exit.FAILED
            continue
        row.update(state="ok", names=len(hl), bytes=path.stat().st_size)
        hl.close()
    bundle_problem = None
    try:
        bundle = installed(args.out)
    except BundleError as exc:
        bundle, bundle_problem = None, str(exc)
        status = Exit.FAILED
    if args.json:
        print_json({"lists": rows, "bundle": None if bundle is None else {
            "version": bundle.version, "created": bundle.created, "publisher": bundle.publisher,
            "categories": list(bundle.categories())}, "bundle_problem": bundle_problem})
        return status
    for row in rows:
        label = f"{row['list']:<18}"
        if row["state"] == "missing":
            print(f"{label} missing")
        elif row["state"] == "unreadable":
            print(f"{label} unreadable: {row['problem']}")
        else:
            size = row["bytes"]
            assert isinstance(size, int)
            print(f"{label} {row['names']:>10,} names  {size / 1024:>10.1f} KiB")
    if bundle_problem is not None:
        print(f"bundle: unreadable record: {bundle_problem}")
        return status
    print(f"bundle: version {bundle.version} of {bundle.created}, list key {bundle.publisher}"
          if bundle else "bundle: none (compiled from local sources)")
    return status
