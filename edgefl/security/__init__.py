"""Federation security on the host: PKI, Mosquitto credentials/ACL/config, `federation init`."""

from edgefl.security.acl import acl_text
from edgefl.security.federation import FederationLayout, init_federation
from edgefl.security.mosquitto_conf import BrokerFiles, mosquitto_conf_text
from edgefl.security.passwords import check_password_line, password_file_text, password_line
from edgefl.security.pki import KeyPair, issue_cert, make_ca

__all__ = [
    "BrokerFiles",
    "FederationLayout",
    "KeyPair",
    "acl_text",
    "check_password_line",
    "init_federation",
    "issue_cert",
    "make_ca",
    "mosquitto_conf_text",
    "password_file_text",
    "password_line",
]
