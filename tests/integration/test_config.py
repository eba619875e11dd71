"""Configuration: unknown keys and bad values stop start-up naming the key; environment overrides; the
reference lists every key the operators and tests rely on; check-config; the example file parses."""
import os

from harness import Node, SRC, main

REQUIRED = ["[node] state_dir", "[node] home_community_id", "[database] url", "[http] listen",
            "[smtp] listen", "[submission] listen", "[mllp] listen", "[log] level"]


def test_reference_lists_required_keys():
    n = Node()
    try:
        r = n.run("config", "--reference")
        assert r.returncode == 0, r.stderr
        for key in REQUIRED:
            assert key in r.stdout, key
        assert "default: 127.0.0.1:8080" in r.stdout
        assert "HIENODE_HTTP_LISTEN" in r.stdout
    finally:
        n.cleanup()


def test_unknown_key_named():
    n = Node(config="[http]\nlisten = 127.0.0.1:8080\nlisten_backlog = 7\n")
    try:
        r = n.run("check-config")
        assert r.returncode != 0
        assert "listen_backlog" in r.stderr and ":3:" in r.stderr, r.stderr
        r = n.run("serve")  # start-up stops before anything is started
        assert r.returncode != 0 and "listen_backlog" in r.stderr, r.stderr
        assert not os.path.exists(n.state)
    finally:
        n.cleanup()


def test_bad_values_named():
    cases = [
        ("[database]\npool_size = 0\n", "pool_size"),
        ("[database]\npool_size = lots\n", "pool_size"),
        ("[http]\nlisten = nowhere\n", "listen"),
        ("[http]\nmax_body = 12 parsecs\n", "max_body"),
        ("[log]\nlevel = chatty\n", "level"),
        ("[http]\ntls_client_required = maybe\n", "tls_client_required"),
        ("[nosuch]\nkey = 1\n", "nosuch"),
        ("listen = 1\n", "outside any [section]"),
        ("[http]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n", "set twice"),
    ]
    for text, needle in cases:
        n = Node(config=text)
        try:
            r = n.run("check-config")
            assert r.returncode != 0, text
            assert needle in r.stderr, (text, r.stderr)
        finally:
            n.cleanup()


def test_env_override_and_bad_env():
    n = Node(config="[jobs]\nworkers = 3\n", env={"HIENODE_JOBS_WORKERS": "5"})
    try:
        r = n.run("config")
        assert r.returncode == 0, r.stderr
        assert "workers = 5    # env" in r.stdout, r.stdout
        n.env["HIENODE_JOBS_WORKERS"] = "-1"
        r = n.run("check-config")
        assert r.returncode != 0 and "HIENODE_JOBS_WORKERS" in r.stderr, r.stderr
    finally:
        n.cleanup()


def test_example_file_is_valid():
    example = os.path.join(SRC, "config", "hienode.conf.example")
    n = Node()
    try:
        n.config_path = example
        r = n.run("check-config")
        assert r.returncode == 0, r.stderr
    finally:
        n.cleanup()


if __name__ == "__main__":
    main([test_reference_lists_required_keys, test_unknown_key_named, test_bad_values_named,
          test_env_override_and_bad_env, test_example_file_is_valid])
