"""Where the planning objects of a CBCT come from: one protocol (``source``), a directory
implementation for ``igrt register`` (``directory``) and a store implementation for the service
(``stored``)."""
