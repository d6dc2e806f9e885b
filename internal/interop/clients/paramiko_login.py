"""Log in with paramiko once per job; used by sshca's interop test.

Reads a JSON list of jobs on stdin and writes a JSON list of results on
stdout, so that one interpreter does every login. A job is
{"id", "host", "port", "user", "key", "key_type", "cert", "known_hosts",
"command", "timeout"}; a result is {"id", "ok", "stdout", "error"}.
A refused login is a result, never an exit status. With --version it
prints the versions of paramiko and what it runs on.
"""
import json
import logging
import sys

import paramiko

KEY_CLASSES = {
    "ed25519": paramiko.Ed25519Key,
    "ecdsa": paramiko.ECDSAKey,
    "rsa": paramiko.RSAKey,
}


def login(job):
    key = KEY_CLASSES[job["key_type"]](filename=job["key"])
    key.load_certificate(job["cert"])
    client = paramiko.SSHClient()
    client.load_host_keys(job["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            job["host"],
            port=job["port"],
            username=job["user"],
            pkey=key,
            look_for_keys=False,
            allow_agent=False,
            timeout=job["timeout"],
            banner_timeout=job["timeout"],
            auth_timeout=job["timeout"],
        )
        _, stdout, _ = client.exec_command(job["command"], timeout=job["timeout"])
        out = stdout.read().decode("utf-8", "replace")
        status = stdout.channel.recv_exit_status()
        if status != 0:
            return False, out, "remote command exited %d" % status
        return True, out, ""
    finally:
        client.close()


def version():
    import cryptography

    return "paramiko %s (Python %s, cryptography %s)" % (
        paramiko.__version__,
        sys.version.split()[0],
        cryptography.__version__,
    )


def main():
    if sys.argv[1:] == ["--version"]:
        print(version())
        return
    logging.disable(logging.CRITICAL)
    results = []
    for job in json.load(sys.stdin):
        try:
            ok, out, err = login(job)
        except Exception as e:  # every failure is a result
            ok, out, err = False, "", "%s: %s" % (type(e).__name__, e)
        results.append({"id": job["id"], "ok": ok, "stdout": out, "error": err})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
