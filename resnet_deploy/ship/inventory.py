"""Ansible inventories (INI or YAML) read with Ansible's own parsers, so `deploy --inventory`
means exactly what `ansible-playbook -i` would: hosts, groups, group vars, host_vars/ folders,
`--limit` patterns. What we add: a malformed file is one line naming the line, and every
selected host's address must resolve before anything is copied anywhere.

Per-host variables we read (Ansible's names, plus ours):
  ansible_host, ansible_port, ansible_user   where to connect (ssh's own config fills the rest)
  ansible_python_interpreter                 the device's Python (numpy + one runtime)
  resnet_deploy_path                         the folder on the device (default: --to)
  resnet_deploy_timeout                      seconds for the self-test on this host (default: --host-timeout)
"""

from __future__ import annotations

import math
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from resnet_deploy.errors import InputError

YAML_SUFFIXES = (".yml", ".yaml", ".json")


@dataclass(frozen=True)
class FleetHost:
    name: str  # the inventory's name for it
    address: str  # ansible_host, else the name (an ssh config alias is fine)
    port: int | None
    user: str | None
    python: str | None
    path: str | None
    timeout: float | None
    groups: tuple[str, ...]


_PLUGINS_READY: list[bool] = []


def _ansible():
    """Ansible's loader, its plugins initialised once (importing Ansible costs ~0.5 s: only the
    fleet path pays)."""
    if not _PLUGINS_READY:
        from ansible.plugins.loader import init_plugin_loader

        init_plugin_loader()
        _PLUGINS_READY.append(True)
    from ansible.parsing.dataloader import DataLoader

    return DataLoader()


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "message", "") or e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("<<<")]
    return (lines[0] if lines else type(e).__name__).removeprefix("Failed to parse inventory: ")


def _check_yaml(path: Path) -> None:
    import yaml

    try:
        yaml.safe_load(path.read_text(errors="replace"))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f" line {mark.line + 1}" if mark else ""
        raise InputError(f"inventory {path}{line}: {e.problem or e.context}; fix the YAML there.") from None
    except yaml.YAMLError as e:
        raise InputError(f"inventory {path}: not YAML ({e}); fix the file.") from None


def _ini_plugin():
    from ansible.plugins.inventory.ini import InventoryModule

    class Ini(InventoryModule):
        """Ansible's INI parser, remembering the line it failed on (its error does not say)."""

        failed_line: int | None = None

        def _parse(self, lines):
            try:
                super()._parse(lines)
            except Exception:
                self.failed_line = self._origin.line_num
                raise

    return Ini()


def check_syntax(path: Path, loader) -> None:
    """Parse with the one Ansible plugin for the file's format; a failure names the line."""
    from ansible.inventory.data import InventoryData

    if path.suffix in YAML_SUFFIXES:
        _check_yaml(path)
        from ansible.plugins.inventory.yaml import InventoryModule

        plugin = InventoryModule()
    else:
        plugin = _ini_plugin()
    try:
        plugin.parse(InventoryData(), loader, str(path))
    except Exception as e:  # Ansible's parsers raise AnsibleError, ValueError...: all mean a bad file
        why = _first_line(e.__cause__ or e)
        line = getattr(plugin, "failed_line", None)
        if line:
            text = path.read_text(errors="replace").splitlines()[line - 1].strip()
            raise InputError(
                f"inventory {path} line {line} ({text[:80]!r}): {why}; fix that line (Ansible INI format)."
            ) from None
        raise InputError(f"inventory {path}: {why}; fix the inventory (Ansible INI or YAML format).") from None


def _where(path: str, what: str, value) -> str:
    """`path line N` for the first line that sets `what` to `value` (Ansible does not keep lines)."""
    try:
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            if what in line and str(value) in line:
                return f"{path} line {n}"
    except (OSError, UnicodeDecodeError):
        pass
    return path


def _number(value, kind: type, what: str, host: str, path: str) -> int | float | None:
    if value in (None, ""):
        return None
    try:
        v = kind(str(value))
    except ValueError:
        raise InputError(
            f"inventory {_where(path, what, value)}: {what} of host {host!r} is {value!r}, not a number; fix it."
        ) from None
    if not (math.isfinite(v) and v > 0):
        raise InputError(
            f"inventory {_where(path, what, value)}: {what} of host {host!r} is {value!r}; pass a finite number > 0."
        )
    return v


def _text(value) -> str | None:
    return str(value) if value else None


def _safe(value, what: str, host: str, path: str, folder: bool) -> str | None:
    """A value that reaches the device's shell and Ansible: safe characters only (never a template)."""
    from resnet_deploy.portable.names import UnsafeName, check_folder, check_path

    text = _text(value)
    if text is None:
        return None
    try:
        return check_folder(text, what) if folder else check_path(text, what)
    except UnsafeName as e:
        raise InputError(f"inventory {_where(path, what, text)}: host {host!r}: {e}") from None


def _host(h, hv: dict, where: str) -> FleetHost:
    return FleetHost(
        h.name,
        str(hv.get("ansible_host") or h.name),
        cast("int | None", _number(hv.get("ansible_port"), int, "ansible_port", h.name, where)),
        _text(hv.get("ansible_user")),
        _safe(hv.get("ansible_python_interpreter"), "ansible_python_interpreter", h.name, where, False),
        _safe(hv.get("resnet_deploy_path"), "resnet_deploy_path", h.name, where, True),
        _number(hv.get("resnet_deploy_timeout"), float, "resnet_deploy_timeout", h.name, where),
        tuple(str(g) for g in hv.get("group_names", ())),
    )


def _check_text(path: Path) -> None:
    """An inventory is UTF-8 text; anything else is one line naming the first bad byte."""
    data = path.read_bytes()
    zero = data.find(b"\0")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        zero = e.start if zero < 0 else min(zero, e.start)
    if zero >= 0:
        line = data[:zero].count(b"\n") + 1
        raise InputError(
            f"inventory {path} line {line}: byte {zero} (0x{data[zero]:02x}) is not UTF-8 text; "
            "pass an Ansible inventory (INI or YAML text)."
        )


def load(path: Path, limit: str | None = None) -> list[FleetHost]:
    """The hosts of the inventory (those matching `limit`, an Ansible pattern), with their
    effective variables (group and host vars merged by Ansible's rules)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--inventory {str(path)!r} is not a file; pass an Ansible inventory (INI or YAML).")
    _check_text(path)
    loader = _ansible()
    check_syntax(path.resolve(), loader)
    from ansible.inventory.manager import InventoryManager
    from ansible.vars.manager import VariableManager

    inv = InventoryManager(loader=loader, sources=[str(path.resolve())])
    variables = VariableManager(loader=loader, inventory=inv)
    hosts = inv.get_hosts(limit or "all")
    if not hosts:
        raise InputError(
            f"inventory {path} has no hosts"
            + (f" matching --limit {limit!r}" if limit else "")
            + "; add hosts or fix the pattern."
        )
    return [_host(h, variables.get_vars(host=h, include_hostvars=False), str(path)) for h in hosts]


def ssh_hostname(address: str, ssh_args: tuple[str, ...] = ()) -> str:
    """The name ssh would connect to (an alias in ~/.ssh/config or -F's file becomes its HostName)."""
    try:
        proc = subprocess.run(["ssh", "-G", *ssh_args, "--", address], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return address
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "hostname" and value:
            return value
    return address


def check_resolves(hosts: list[FleetHost], ssh_args: tuple[str, ...] = ()) -> None:
    """Every host's address resolves (through ssh's config, then DNS/hosts), or one line naming
    each that does not: a typo in an inventory is an input error, found before any copy."""
    bad: list[tuple[str, str]] = []
    for h in hosts:
        name = ssh_hostname(h.address, ssh_args)
        try:
            socket.getaddrinfo(name, h.port or 22, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            bad.append((h.name, name))
    if bad:
        said = ", ".join(f"{n!r}" + (f" ({a})" if a != n else "") for n, a in bad)
        raise InputError(
            f"host address does not resolve: {said}; fix the inventory's ansible_host (or DNS), "
            f"or leave the host out with --limit 'all:!{bad[0][0]}'."
        )
