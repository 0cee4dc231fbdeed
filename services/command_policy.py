"""Who may run which command (CONTRACT §10): the command server asks :meth:`CommandPolicy.refusal`
with the client's identity as ZeroMQ's ZAP handler authenticated it (the ``User-Id`` frame
property: the client's CURVE public key, Z85-encoded).

* Without ``[zmq.curve]`` there is no client identity: every command is allowed to whoever can
  reach the socket (the built-in default binds loopback only; see README "Security").
* With ``[zmq.curve]``: only listed clients get a connection at all (the ZAP handler refuses the
  others before any request); a client listed in ``control_clients_dir`` may run every command,
  one listed only in ``clients_dir`` (a reader) may not run :data:`CONTROL_COMMANDS`.

The policy is pure: a frozen set of command names and a frozen set of client identities.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Commands that change what a patient is treated with (CONTRACT §10), and ``qa_expect``, which
#: declares the next CBCT of a Patient ID a QA phantom's: a control client only.
CONTROL_COMMANDS: tuple[str, ...] = ("select_plan", "approve", "reject", "register_again",
                                     "qa_expect")


@dataclass(frozen=True)
class CommandPolicy:
    """``control_clients``: the identities (Z85 public keys) allowed :data:`CONTROL_COMMANDS`;
    ``None`` when the sockets run without CURVE (no identities: everything allowed)."""

    control_clients: frozenset[str] | None = None

    @property
    def authenticates(self) -> bool:
        return self.control_clients is not None

    def refusal(self, cmd: str, client_id: str | None) -> str | None:
        """Why ``client_id`` may not run ``cmd`` (a sentence), or ``None`` when it may."""
        if self.control_clients is None or cmd not in CONTROL_COMMANDS:
            return None
        if client_id is not None and client_id in self.control_clients:
            return None
        who = f"client {client_id[:8]}..." if client_id else "this client"
        allowed = ", ".join(CONTROL_COMMANDS[:-1]) + f" and {CONTROL_COMMANDS[-1]}"
        return (f"{cmd} is refused: {who} is a reader; only a control client (a public key in "
                f"[zmq.curve] control_clients_dir) may run {allowed}")
