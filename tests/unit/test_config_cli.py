"""`dynipsec responder check|run`, the shipped examples, and secrets never printed."""
from __future__ import annotations

from pathlib import Path

import pytest

from responder.cli import main
from responder.config import ConfigError, config_warnings, load_config

EXAMPLES = Path(__file__).parents[2] / "responder" / "examples"
LAB = EXAMPLES / "lab-default.yaml"

SECRETS = ["hunter2-group-key", "s3cr3t-radius", "pa55-alice", "dae-s3cret-x", "987654321"]

#: A file full of mistakes right next to secrets (inline, wrongly typed, under a
#: misspelled key, in a model-level error).
LEAKY = f"""\
listen:
  - address: 192.0.2.1
vrs:
  corp: {{netns: corp}}
pre_shared_keys:
  - identity: "keyid:*"
    secret: {SECRETS[0]}
  - secret: {SECRETS[0]}
  - local: 192.0.2.1
    secret: {SECRETS[4]}
  - identity: "keyid:x"
    secrte: {SECRETS[0]}
tunnel_profiles:
  - {{name: p, vr: nope, transforms: [aes256-sha7]}}
aaa:
  default_method: radius
  local_users:
    alice: {{password: {SECRETS[2]}, vr: nope}}
    bob: {{password: [{SECRETS[2]}]}}
  radius:
    server_groups:
      g: {{servers: [{{address: 192.0.2.300, secret: {SECRETS[1]}}}]}}
  dae:
    clients: [{{address: 10.0.0.1, secret: {SECRETS[3]}, secret_file: x}}]
licenses: {{ipsec_tunnel: -1, subscriber: 1}}
"""


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- the examples -------------------------------------------------------------------------
def test_lab_example_passes_check(capsys):
    code, out, err = run_cli(capsys, "responder", "check", "-c", str(LAB))
    assert code == 0, err
    assert out.splitlines()[-1].startswith("ok: 3 tunnel profiles, 2 VRs, 2 pools, ")
    assert err == ""


def test_lab_example_matches_the_lab_contract():
    cfg = load_config(LAB)
    assert [str(entry.address) for entry in cfg.listen] == ["198.18.0.1"]
    assert {name: vr.netns for name, vr in cfg.vrs.items()} == {"vr1": "dlvr1", "vr2": "dlvr2"}
    assert cfg.pools["vr1"]["main"].ranges == ["10.99.1.0/24"]
    assert any("modp1024" in p for p in cfg.ike.proposals)
    identities = {str(i) for p in cfg.tunnel_profiles for i in p.match.identities}
    assert identities == {"keyid:vr1", "keyid:vr2"}
    assert str(cfg.aaa.dae.listen) == "10.255.0.1" and cfg.aaa.dae.port == 3799
    assert cfg.workers == 2
    assert [str(a) for a in cfg.profile("group-vr1").mode_config.wins] == ["10.50.0.137", "10.50.0.138"]


def test_lab_example_warns_about_aggressive_mode():
    warnings = config_warnings(load_config(LAB))
    assert any(w.startswith("ike.aggressive_mode:") for w in warnings)


def test_positional_config_argument(capsys):
    code, out, _ = run_cli(capsys, "responder", "check", str(EXAMPLES / "minimal.yaml"))
    assert code == 0 and "ok: 1 tunnel profiles" in out


# -- failures -----------------------------------------------------------------------------
def test_check_of_a_broken_file_prints_every_line_and_exits_1(tmp_path: Path, capsys):
    path = tmp_path / "leaky.yaml"
    path.write_text(LEAKY)
    code, out, err = run_cli(capsys, "responder", "check", "-c", str(path))
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == f"{path}: {len(lines) - 1} problem(s)"
    for expected in ("tunnel_profiles[0].transforms[0]: unknown ESP transform 'aes256-sha7'",
                     "licenses.ipsec_tunnel: input should be greater than or equal to 0",
                     "pre_shared_keys[0].identity: identity 'keyid:*': wildcards",
                     "pre_shared_keys[1]: a Main Mode key (no 'identity') needs 'local'",
                     "pre_shared_keys[2].secret: must be a string (quote it in YAML)",
                     "pre_shared_keys[3].secrte: unknown key (did you mean 'secret'?)",
                     "aaa.local_users.bob.password:",
                     "aaa.radius.server_groups.g.servers[0].address: '192.0.2.300' is not",
                     "aaa.dae.clients[0]: give exactly one of 'secret' or 'secret_file'"):
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    assert "ok:" not in out


def test_secrets_never_appear_in_any_output(tmp_path: Path, capsys):
    path = tmp_path / "leaky.yaml"
    path.write_text(LEAKY)
    _, out, err = run_cli(capsys, "responder", "check", "-c", str(path))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    for text in (out, err, str(caught.value), repr(caught.value)):
        for secret in SECRETS:
            assert secret not in text


def test_secrets_never_appear_in_a_valid_config_repr():
    cfg = load_config(LAB)
    text = repr(cfg) + str(cfg) + cfg.summary() + repr(cfg.model_dump())
    for secret in ("psk-vr1", "lab-radius-secret", "pw-user001"):
        assert secret not in text


def test_yaml_error_on_a_secret_line_does_not_echo_it(tmp_path: Path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("pre_shared_keys:\n  - secret: 'unterminated-s3cret\n")
    code, out, err = run_cli(capsys, "responder", "check", "-c", str(path))
    assert code == 1 and "invalid YAML" in err and "line " in err
    assert "s3cret" not in out + err


def test_missing_file(tmp_path: Path, capsys):
    code, _, err = run_cli(capsys, "responder", "check", "-c", str(tmp_path / "none.yaml"))
    assert code == 1 and "cannot read configuration: No such file or directory" in err


def test_no_config_given(capsys):
    code, _, err = run_cli(capsys, "responder", "check")
    assert code == 1 and "-c CONFIG" in err


# -- run ----------------------------------------------------------------------------------
def test_run_hands_the_validated_config_to_the_daemon(capsys, monkeypatch):
    import responder.daemon

    seen = []
    monkeypatch.setattr(responder.daemon, "run",
                        lambda path, config: seen.append((path, config)) or 7)
    code, _, _ = run_cli(capsys, "responder", "run", "-c", str(LAB))
    assert code == 7
    assert seen and seen[0][0] == str(LAB) and seen[0][1].summary()


def test_run_refuses_a_broken_config(tmp_path: Path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("workers: 0\n")
    code, _, err = run_cli(capsys, "responder", "run", "-c", str(path))
    assert code == 1 and "workers:" in err
