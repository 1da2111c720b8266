"""Rendering of every template for every host (golden files), and the real checkers on it.

Regenerate the golden files after a deliberate template or inventory change with
``UPDATE_GOLDEN=1 pytest tests/test_render.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2 import UndefinedError
from nornir.core.inventory import Inventory
from nornir.plugins.inventory import SimpleInventory

from tasks.deploy.files import MARIADB_SETTINGS, by_service, host_files
from tasks.deploy.render import host_context, render_template

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory"
GOLDEN = Path(__file__).resolve().parent / "golden"

Rendered = dict[str, dict[str, str]]
# The web tier's db.php gets the app's password from the secrets, never from the inventory;
# a fixed stand-in here keeps the golden files stable.
DB_PASS = "golden-stand-in-password"
DB_PHP = "/etc/app_nulle/db.php"


def load(hosts: Path, groups: Path, defaults: Path) -> Inventory:
    return SimpleInventory(str(hosts), str(groups), str(defaults)).load()


def real_inventory() -> Inventory:
    return load(INVENTORY / "hosts.yaml", INVENTORY / "groups.yaml", INVENTORY / "defaults.yaml")


def variant(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Inventory:
    """The real inventory with groups.yaml changed by ``change``."""
    groups = yaml.safe_load((INVENTORY / "groups.yaml").read_text())
    change(groups)
    path = tmp_path / "groups.yaml"
    path.write_text(yaml.safe_dump(groups))
    return load(INVENTORY / "hosts.yaml", path, INVENTORY / "defaults.yaml")


def render_all(inventory: Inventory) -> Rendered:
    """host name -> {absolute path -> content} for every templated file."""
    out: Rendered = {}
    for host in inventory.hosts.values():
        context = host_context(host, inventory)
        out[host.name] = {
            spec.path: render_template(spec.template, **context,
                                       **({"db_pass": DB_PASS} if spec.secret else {}))
            for spec in host_files(host) if spec.template is not None
        }
    return out


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return render_all(real_inventory())


def test_golden_files(rendered: Rendered) -> None:
    expected_paths = {GOLDEN / host / path.lstrip("/")
                      for host, files in rendered.items() for path in files}
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for host, files in rendered.items():
            for path, content in files.items():
                target = GOLDEN / host / path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
    stored = {p for p in GOLDEN.rglob("*") if p.is_file()}
    assert stored == expected_paths, "golden files out of date: rerun with UPDATE_GOLDEN=1"
    for host, files in rendered.items():
        for path, content in files.items():
            golden = GOLDEN / host / path.lstrip("/")
            assert content == golden.read_text(), f"{host}:{path} differs from {golden}"


def test_every_host_gets_its_tier_files(rendered: Rendered) -> None:
    assert set(rendered["web1"]) == {"/etc/apache2/ports.conf",
                                     "/etc/apache2/sites-available/app_nulle.conf",
                                     "/var/www/app_nulle/index.php", DB_PHP}
    assert set(rendered["rp2"]) == {"/etc/nginx/conf.d/app_nulle.conf",
                                    "/etc/keepalived/keepalived.conf"}
    assert set(rendered["db1"]) == {MARIADB_SETTINGS}


def test_only_db_php_holds_the_password_and_its_diff_never_shows_it(rendered: Rendered) -> None:
    from tasks.deploy.push import CurrentFile, DesiredFile, diff_file

    holding = {(host, path) for host, files in rendered.items()
               for path, content in files.items() if DB_PASS in content}
    assert holding == {("web1", DB_PHP), ("web2", DB_PHP), ("web3", DB_PHP)}
    spec = next(s for s in host_files(real_inventory().hosts["web1"]) if s.path == DB_PHP)
    assert spec.secret and (spec.mode, spec.owner) == ("0640", "root:www-data")
    desired = DesiredFile(DB_PHP, rendered["web1"][DB_PHP], spec.mode, spec.owner, secret=True)
    old = CurrentFile(DB_PHP, "file", "<?php\n$db_pass = 'old';\n", "0640", "root:www-data")
    diff = diff_file(old, desired)
    assert "# secret content differs (not shown)" in diff
    assert DB_PASS not in diff and "old" not in diff


def test_upstream_has_one_server_line_per_web_host(rendered: Rendered) -> None:
    for proxy in ("rp1", "rp2"):
        conf = rendered[proxy]["/etc/nginx/conf.d/app_nulle.conf"]
        servers = re.findall(r"^\s+server (\S+) max_fails=1 fail_timeout=10s;  # (\S+)$", conf,
                             re.MULTILINE)
        assert servers == [("10.5.1.11:80", "web1.tp5.b2"), ("10.5.1.12:80", "web2.tp5.b2"),
                           ("10.5.1.13:80", "web3.tp5.b2")]
        assert "upstream app_nulle_servers {" in conf
        assert "proxy_pass http://app_nulle_servers;" in conf
        assert "ip_hash" not in conf and "hash $cookie" not in conf
        assert re.search(r"^\s+listen 80;$", conf, re.MULTILINE)
        assert "10.5.1.110" in conf


def test_master_only_on_rp1_with_priorities(rendered: Rendered) -> None:
    rp1 = rendered["rp1"]["/etc/keepalived/keepalived.conf"]
    rp2 = rendered["rp2"]["/etc/keepalived/keepalived.conf"]
    assert "    state MASTER\n" in rp1 and "    priority 150\n" in rp1
    assert "    state BACKUP\n" in rp2 and "    priority 100\n" in rp2
    assert "MASTER\n" not in rp2
    for conf in (rp1, rp2):
        assert 'notify_backup "/usr/sbin/service nginx reload"' in conf
        assert "virtual_router_id 51\n" in conf
        assert "10.5.1.110/24 dev eth0\n" in conf
        assert "    version 2\n" in conf and "    advert_int 1\n" in conf
        assert "enable_script_security" in conf and "script_user root" in conf
        assert "nopreempt" not in conf


def test_web_page_identifies_its_server(rendered: Rendered) -> None:
    for number in (1, 2, 3):
        files = rendered[f"web{number}"]
        assert files["/etc/apache2/ports.conf"].endswith(f"Listen 10.5.1.1{number}:80\n")
        assert f"<VirtualHost 10.5.1.1{number}:80>" in \
            files["/etc/apache2/sites-available/app_nulle.conf"]
        page = files["/var/www/app_nulle/index.php"]
        assert f"const SERVED_BY = 'web{number}.tp5.b2 10.5.1.1{number}';" in page
        assert "header('X-Served-By: ' . SERVED_BY);" in page
        assert "session_name('app_nulle_sid');" in page


def test_fast_profile_is_vrrpv3_with_sub_second_adverts(tmp_path: Path) -> None:
    inventory = variant(tmp_path, lambda g: g["rp"]["data"].update(vrrp_profile="fast"))
    conf = render_all(inventory)["rp1"]["/etc/keepalived/keepalived.conf"]
    assert "    version 3\n" in conf and "    vrrp_version 3\n" in conf
    assert "    advert_int 0.1\n" in conf
    assert "    interval 1\n" in conf  # vrrp_script intervals are whole seconds


def test_ip_hash_affinity(tmp_path: Path) -> None:
    inventory = variant(tmp_path, lambda g: g["rp"]["data"].update(lb_affinity="ip_hash"))
    conf = render_all(inventory)["rp1"]["/etc/nginx/conf.d/app_nulle.conf"]
    assert "upstream app_nulle_servers {\n    ip_hash;\n    server 10.5.1.11:80" in conf


def test_cookie_affinity_uses_the_app_session_cookie(tmp_path: Path) -> None:
    inventory = variant(tmp_path, lambda g: g["rp"]["data"].update(lb_affinity="hash_cookie"))
    conf = render_all(inventory)["rp2"]["/etc/nginx/conf.d/app_nulle.conf"]
    assert "    hash $cookie_app_nulle_sid consistent;\n" in conf


def test_nopreempt_starts_every_proxy_as_backup(tmp_path: Path) -> None:
    inventory = variant(tmp_path, lambda g: g["rp"]["data"].update(vrrp_preempt=False))
    rendered = render_all(inventory)
    for proxy in ("rp1", "rp2"):
        conf = rendered[proxy]["/etc/keepalived/keepalived.conf"]
        assert "    state BACKUP\n    nopreempt\n" in conf
    assert "priority 150" in rendered["rp1"]["/etc/keepalived/keepalived.conf"]


def test_preempt_delay_starts_every_proxy_as_backup(tmp_path: Path) -> None:
    inventory = variant(tmp_path, lambda g: g["rp"]["data"].update(vrrp_preempt_delay=12))
    rendered = render_all(inventory)
    for proxy in ("rp1", "rp2"):
        conf = rendered[proxy]["/etc/keepalived/keepalived.conf"]
        assert "    state BACKUP\n    preempt_delay 12\n" in conf
        assert "state MASTER" not in conf
    assert "priority 150" in rendered["rp1"]["/etc/keepalived/keepalived.conf"]


def test_more_web_servers_in_natural_order(tmp_path: Path) -> None:
    hosts = yaml.safe_load((INVENTORY / "hosts.yaml").read_text())
    for number in (4, 10, 11):
        hosts[f"web{number}"] = {"hostname": f"10.5.1.{20 + number}", "groups": ["web"]}
    path = tmp_path / "hosts.yaml"
    path.write_text(yaml.safe_dump(hosts))
    inventory = load(path, INVENTORY / "groups.yaml", INVENTORY / "defaults.yaml")
    conf = render_all(inventory)["rp1"]["/etc/nginx/conf.d/app_nulle.conf"]
    names = re.findall(r"# (web\d+)\.tp5\.b2$", conf, re.MULTILINE)
    assert names == ["web1", "web2", "web3", "web4", "web10", "web11"]


def test_strict_undefined_raises_on_a_missing_input() -> None:
    inventory = real_inventory()
    context = host_context(inventory.hosts["rp1"], inventory)
    del context["vip"]
    with pytest.raises(UndefinedError, match="vip"):
        render_template("nginx/site.conf.j2", **context)
    with pytest.raises(UndefinedError):
        render_template("keepalived/keepalived.conf.j2", name="rp1")


def test_missing_inventory_key_raises(tmp_path: Path) -> None:
    inventory = variant(tmp_path, lambda g: g["rp"]["data"].pop("vip"))
    with pytest.raises(KeyError, match="vip"):
        host_context(inventory.hosts["rp1"], inventory)


def test_tier_files_describe_links_removals_and_checks() -> None:
    inventory = real_inventory()
    web = {spec.path: spec for spec in host_files(inventory.hosts["web2"])}
    assert web["/etc/apache2/sites-enabled/000-default.conf"].state == "absent"
    link = web["/etc/apache2/sites-enabled/app_nulle.conf"]
    assert (link.state, link.target) == ("link", "../sites-available/app_nulle.conf")
    assert web["/etc/apache2/ports.conf"].validate_cmd == "apache2ctl configtest"
    rp = {spec.path: spec for spec in host_files(inventory.hosts["rp1"])}
    assert rp["/etc/nginx/sites-enabled/default"].state == "absent"
    keepalived = rp["/etc/keepalived/keepalived.conf"]
    assert keepalived.checks_candidate
    assert keepalived.validate_command("/tmp/c") == "keepalived --config-test -f /tmp/c"
    assert not rp["/etc/nginx/conf.d/app_nulle.conf"].checks_candidate
    (settings,) = host_files(inventory.hosts["db1"])
    assert settings.path == MARIADB_SETTINGS and "server-id=1" in str(settings.validate_cmd)


def test_by_service_groups_files_with_one_check_and_one_reload() -> None:
    inventory = real_inventory()
    groups = by_service(host_files(inventory.hosts["rp1"]) + host_files(inventory.hosts["web1"]))
    assert [g.service for g in groups] == ["nginx", "keepalived", "apache2", "app"]
    nginx, keepalived, apache, app = groups
    assert app.validate_cmd == "php -l /etc/app_nulle/db.php" and app.reload_cmd is None
    assert nginx.validate_cmd == "nginx -t"
    assert keepalived.validate_cmd == "keepalived --config-test -f /etc/keepalived/keepalived.conf"
    assert apache.validate_cmd == \
        "(apache2ctl configtest) && (php -l /var/www/app_nulle/index.php)"
    assert apache.reload_cmd is not None and "service apache2 reload" in apache.reload_cmd
    assert len(apache.files) == 5


# -- the daemons' own checkers on the rendered output ----------------------------------------

NGINX = "/usr/sbin/nginx"
KEEPALIVED = "/usr/sbin/keepalived"
APACHE = "/usr/sbin/apache2"
PHP = shutil.which("php") or "/usr/bin/php"

VARIANTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "real": lambda g: None,
    "fast-ip_hash": lambda g: g["rp"]["data"].update(vrrp_profile="fast", lb_affinity="ip_hash"),
    "cookie-nopreempt": lambda g: g["rp"]["data"].update(lb_affinity="hash_cookie",
                                                         vrrp_preempt=False),
}


def need(binary: str) -> None:
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} is not installed (apt-get install the Debian package)")


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})}, check=False)


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


@pytest.fixture(params=sorted(VARIANTS))
def variant_rendered(request: pytest.FixtureRequest, tmp_path: Path) -> Rendered:
    return render_all(variant(tmp_path, VARIANTS[request.param]))


def nginx_test(tmp_path: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on a throwaway main config that includes ``site`` (nothing under /etc)."""
    main = write(tmp_path, "nginx.conf", f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {site};
}}
""")
    return run([NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(main),
                "-e", str(tmp_path / "error.log")])


def test_nginx_accepts_the_rendered_site(variant_rendered: Rendered, tmp_path: Path) -> None:
    need(NGINX)
    for proxy in ("rp1", "rp2"):
        site = write(tmp_path, f"{proxy}.conf",
                     variant_rendered[proxy]["/etc/nginx/conf.d/app_nulle.conf"])
        checked = nginx_test(tmp_path, site)
        assert checked.returncode == 0, checked.stderr


def test_nginx_check_rejects_a_broken_site(tmp_path: Path) -> None:
    need(NGINX)
    site = write(tmp_path, "broken.conf", "upstream x { server; }\n")
    assert nginx_test(tmp_path, site).returncode != 0


def keepalived_test(conf: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if not Path("/sys/class/net/eth0").exists():  # the checker wants the interface to exist
        conf = conf.replace("interface eth0", "interface lo").replace("dev eth0", "dev lo")
    return run([KEEPALIVED, "--config-test", "-f", str(write(tmp_path, "keepalived.conf", conf))])


def test_keepalived_accepts_the_rendered_config(variant_rendered: Rendered,
                                                tmp_path: Path) -> None:
    need(KEEPALIVED)
    for proxy in ("rp1", "rp2"):
        checked = keepalived_test(variant_rendered[proxy]["/etc/keepalived/keepalived.conf"],
                                  tmp_path)
        assert checked.returncode == 0, checked.stderr
        assert checked.stderr == "", checked.stderr  # not even a warning


def test_keepalived_check_rejects_a_broken_config(rendered: Rendered, tmp_path: Path) -> None:
    need(KEEPALIVED)
    conf = rendered["rp1"]["/etc/keepalived/keepalived.conf"].replace("advert_int 1", "advert 1")
    assert keepalived_test(conf, tmp_path).returncode != 0


def test_apache_accepts_the_rendered_site(rendered: Rendered, tmp_path: Path) -> None:
    need(APACHE)
    if not Path("/etc/apache2/mods-enabled").is_dir():
        pytest.skip("/etc/apache2/mods-enabled is missing (apt-get install apache2)")
    for web in ("web1", "web2", "web3"):
        files = rendered[web]
        ports = write(tmp_path, f"{web}-ports.conf", files["/etc/apache2/ports.conf"])
        site = write(tmp_path, f"{web}-site.conf",
                     files["/etc/apache2/sites-available/app_nulle.conf"])
        main = write(tmp_path, "apache2.conf", f"""
ServerRoot /etc/apache2
DefaultRuntimeDir {tmp_path}
PidFile {tmp_path}/apache2.pid
Mutex file:{tmp_path} default
ErrorLog {tmp_path}/error.log
Include /etc/apache2/mods-enabled/*.load
Include /etc/apache2/mods-enabled/*.conf
Include {ports}
Include {site}
""")
        env = {name: str(tmp_path) for name in ("APACHE_LOCK_DIR", "APACHE_RUN_DIR",
                                                "APACHE_LOG_DIR")}
        env.update(APACHE_RUN_USER="www-data", APACHE_RUN_GROUP="www-data")
        checked = run([APACHE, "-t", "-f", str(main)], env=env)
        assert checked.returncode == 0, checked.stderr
        assert "Syntax OK" in checked.stdout + checked.stderr


def test_php_page_is_valid_and_answers_without_a_database(rendered: Rendered,
                                                          tmp_path: Path) -> None:
    need(PHP)
    page = rendered["web2"]["/var/www/app_nulle/index.php"]
    script = write(tmp_path, "index.php", page.replace("/etc/app_nulle/db.php",
                                                         str(tmp_path / "db.php")))
    lint = run([PHP, "-l", str(script)])
    assert lint.returncode == 0, lint.stdout + lint.stderr
    sessions = ["-d", f"session.save_path={tmp_path}"]
    answer = run([PHP, *sessions, str(script)])
    assert answer.returncode == 0, answer.stderr
    assert "served-by: web2.tp5.b2 10.5.1.12\n" in answer.stdout
    assert f"db: unavailable (no {tmp_path / 'db.php'})" in answer.stdout
    # The rendered db.php is valid PHP and sets what the page reads.
    settings = write(tmp_path, "db.php", rendered["web2"][DB_PHP])
    assert run([PHP, "-l", str(settings)]).returncode == 0
    shown = run([PHP, "-r", f"include '{settings}'; echo \"$db_host $db_port $db_name "
                            "$db_user $db_pass $db_replica_host\";"])
    assert shown.stdout == f"10.5.1.211 3306 app_nulle app_nulle {DB_PASS} 10.5.1.212"
    # A configured but dead database (loopback, closed port): still an answer, quickly.
    write(tmp_path, "db.php", '<?php\n$db_host = "127.0.0.1"; $db_port = 9; '
                              '$db_name = "app"; $db_user = "app"; $db_pass = "x";\n')
    answer = run([PHP, *sessions, str(script)])
    assert answer.returncode == 0, answer.stderr
    assert re.search(r"^db: unavailable \(.+\)$", answer.stdout, re.MULTILINE), answer.stdout
