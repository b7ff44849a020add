"""Datasets: register, upload versions (streamed and encrypted on the way in), list, show,
download (decrypted on the way out), grant, revoke, delete (crypto-shredding) and the
rotation of organisation keys.

Who may do what:
- members of the owning project read, register and upload;
- members of a granted project read;
- the owning project's principal investigator (or an admin) grants, revokes and deletes;
  a grant to a project of another organisation needs the owner's consent: only that
  principal investigator may give it, and only by saying so (`cross_organisation`);
- admins see every dataset's terms but read its data only through a grant to their project;
- to anyone else a dataset does not exist (404).

The modules: `vault` (storage and the master key), `keys` (organisation keys and their
rotation), `permissions`, `views`, `terms` (register, list, show), `upload`, `download`,
`grants`, `deletion`. What jobs need to read a dataset is re-exported here.
"""

from fabriek.services.datasets.download import open_plaintext
from fabriek.services.datasets.vault import Vault

__all__ = ["Vault", "open_plaintext"]
