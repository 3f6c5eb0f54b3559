"""Tables of the ``products`` migration component (registered in ``agent/store/migrations.py``).

``product_embeddings``: the gallery (one row per enrolled vector; ``space`` names the embedder + head that
produced it, so vectors of another embedding space are never mixed in). ``weighings``: one row per stable
weighing that got candidates, completed when the screen confirms.
"""

PRODUCTS_MIGRATIONS: list[str] = [
    """
    CREATE TABLE product_embeddings (
        uid         TEXT PRIMARY KEY,
        plu         TEXT NOT NULL,
        space       TEXT NOT NULL,
        vector      BLOB NOT NULL,
        source      TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE INDEX product_embeddings_space ON product_embeddings(space, plu);
    CREATE TABLE weighings (
        id               TEXT PRIMARY KEY,
        scale            TEXT NOT NULL,
        stable_ts        REAL NOT NULL,
        weight_kg        REAL NOT NULL,
        candidates       TEXT NOT NULL,
        candidates_ms    REAL NOT NULL,
        status           TEXT NOT NULL DEFAULT 'pending',
        plu              TEXT,
        chosen_rank      INTEGER,
        unit_price       REAL,
        unit             TEXT,
        total            REAL,
        confirmed_at     REAL,
        confirm_ms       REAL
    );
    CREATE INDEX weighings_scale_ts ON weighings(scale, stable_ts);
    """,
]
