"""State database schema, created and upgraded with sqlite-utils migrations.

The schema is the contract between the engine (the only writer of state rows) and the
consoles (readers that write only ``requests``). Tables:

``nights``          one row per UT night seen
``frames``          one row per raw FITS file (IFU and guider), with its planned kind and state
``calibrations``    one row per calibration attempt of a night, with its figures
``observations``    one row per IFU standard/science exposure: object, times, state, progress
``extractions``     one row per extraction attempt (robot, redoHHMMSS): centroid, region,
                    PSF figures, quality and why, products, status
``classifications`` one row per classified extraction
``requests``        console/CLI requests: re-extract, recover, accept, reject, report
``events``          the append-only change log consoles tail (AUTOINCREMENT id)
``engine``          the writer lease, heartbeat and current activity
``deliveries``      the delivery ledger: one row per thing sent (or to send) to another system
``reprocess``       the reprocessing ledger: one row per calibration or exposure task of
                    ``sedmtui reprocess``, with the fingerprint of its inputs and configuration
``targets``         a view: one row per IFU exposure with its current extraction
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

from engine.state.versions import MIGRATION_SET

migrations = Migrations(MIGRATION_SET)


@migrations(name="m001_initial")
def _m001_initial(db: Database) -> None:
    statements = [
        """CREATE TABLE nights (
            night TEXT PRIMARY KEY,
            raw_dir TEXT,
            redux_dir TEXT,
            created TEXT,
            calib_status TEXT DEFAULT 'waiting',
            calib_id INTEGER,
            report_comment TEXT DEFAULT '',
            final_report_at TEXT
        )""",
        """CREATE TABLE frames (
            id INTEGER PRIMARY KEY,
            night TEXT NOT NULL,
            file TEXT NOT NULL,
            path TEXT NOT NULL UNIQUE,
            camera TEXT,
            kind TEXT,
            lamp TEXT,
            reason TEXT,
            object TEXT,
            name TEXT,
            imgtype TEXT,
            exptime REAL,
            adcspeed REAL,
            airmass REAL,
            jd REAL,
            obs_id TEXT,
            size INTEGER,
            mtime REAL,
            state TEXT NOT NULL DEFAULT 'seen',
            error TEXT,
            attempts INTEGER DEFAULT 0,
            next_retry REAL,
            header_json TEXT,
            created TEXT,
            updated TEXT
        )""",
        "CREATE INDEX frames_night ON frames(night, kind)",
        """CREATE TABLE calibrations (
            id INTEGER PRIMARY KEY,
            night TEXT NOT NULL,
            status TEXT NOT NULL,
            source_night TEXT,
            level TEXT,
            products_json TEXT,
            stats_json TEXT,
            inputs_json TEXT,
            wall_s REAL,
            error TEXT,
            created TEXT
        )""",
        """CREATE TABLE observations (
            id INTEGER PRIMARY KEY,
            night TEXT NOT NULL,
            obs_id TEXT NOT NULL,
            frame_id INTEGER REFERENCES frames(id),
            file TEXT,
            object TEXT,
            name TEXT,
            kind TEXT,
            exptime REAL,
            airmass REAL,
            jd REAL,
            ra TEXT,
            dec TEXT,
            p60prid TEXT,
            state TEXT NOT NULL DEFAULT 'waiting',
            stage TEXT,
            progress REAL DEFAULT 0,
            error TEXT,
            current_extraction_id INTEGER,
            cube_file TEXT,
            needs_fluxcal INTEGER DEFAULT 0,
            created TEXT,
            updated TEXT,
            UNIQUE(night, obs_id)
        )""",
        """CREATE TABLE extractions (
            id INTEGER PRIMARY KEY,
            observation_id INTEGER NOT NULL REFERENCES observations(id),
            night TEXT NOT NULL,
            obs_id TEXT NOT NULL,
            tag TEXT NOT NULL,
            status TEXT NOT NULL,
            request_id INTEGER,
            reducer TEXT,
            srcpos TEXT,
            centroid_x REAL,
            centroid_y REAL,
            guess_x REAL,
            guess_y REAL,
            astrom_x REAL,
            astrom_y REAL,
            bright_x REAL,
            bright_y REAL,
            region_json TEXT,
            lstep INTEGER DEFAULT 1,
            psf_fwhm_arcsec REAL,
            psf_ell REAL,
            adr_pa REAL,
            adr_airmass REAL,
            adr_chi2 REAL,
            quality INTEGER,
            quality_reason TEXT,
            s2n REAL,
            fluxcal INTEGER,
            calsrc TEXT,
            calsrc_dt_h REAL,
            spec_fits TEXT,
            spec_txt TEXT,
            psf_file TEXT,
            verify_png TEXT,
            fluxcal_file TEXT,
            delivered INTEGER DEFAULT 0,
            facts_json TEXT,
            created TEXT,
            updated TEXT
        )""",
        "CREATE INDEX extractions_obs ON extractions(observation_id)",
        """CREATE TABLE classifications (
            id INTEGER PRIMARY KEY,
            extraction_id INTEGER NOT NULL REFERENCES extractions(id),
            night TEXT NOT NULL,
            obs_id TEXT NOT NULL,
            classifier TEXT NOT NULL,
            type TEXT,
            subtype TEXT,
            rlap REAL,
            z REAL,
            z_err REAL,
            zmed REAL,
            zmed_err REAL,
            age REAL,
            age_med REAL,
            age_err REAL,
            template TEXT,
            frac_ia REAL,
            frac_ib REAL,
            frac_ic REAL,
            frac_ii REAL,
            frac_notsn REAL,
            template_file TEXT,
            created TEXT
        )""",
        "CREATE INDEX classifications_ext ON classifications(extraction_id)",
        """CREATE TABLE requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created TEXT NOT NULL,
            user TEXT,
            kind TEXT NOT NULL,
            night TEXT,
            target TEXT,
            params_json TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            result_json TEXT,
            error TEXT,
            claimed_at TEXT,
            finished_at TEXT
        )""",
        "CREATE INDEX requests_status ON requests(status)",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts TEXT NOT NULL,
            night TEXT,
            kind TEXT NOT NULL,
            obs_id TEXT,
            frame TEXT,
            level TEXT DEFAULT 'info',
            message TEXT,
            payload_json TEXT
        )""",
        """CREATE TABLE engine (
            name TEXT PRIMARY KEY,
            owner TEXT,
            token TEXT,
            version TEXT,
            started TEXT,
            heartbeat REAL,
            heartbeat_iso TEXT,
            activity TEXT,
            queue_len INTEGER DEFAULT 0,
            status TEXT
        )""",
        """CREATE VIEW targets AS
        SELECT o.night AS night,
               o.obs_id AS obs_id,
               o.id AS observation_id,
               o.object AS object,
               o.name AS name,
               o.kind AS kind,
               o.exptime AS exptime,
               o.airmass AS airmass,
               o.jd AS jd,
               o.state AS state,
               o.stage AS stage,
               o.progress AS progress,
               o.error AS error,
               e.id AS extraction_id,
               e.tag AS extraction,
               e.quality AS quality,
               e.quality_reason AS quality_reason,
               e.srcpos AS srcpos,
               e.s2n AS s2n,
               e.delivered AS delivered,
               c.type AS snid_type,
               c.subtype AS snid_subtype,
               c.z AS redshift,
               c.rlap AS rlap,
               e.spec_fits AS spec_file,
               e.spec_txt AS spec_txt
        FROM observations o
        LEFT JOIN extractions e ON e.id = o.current_extraction_id
        LEFT JOIN classifications c ON c.id = (
            SELECT max(c2.id) FROM classifications c2
            WHERE c2.extraction_id = e.id AND c2.classifier = 'builtin')""",
    ]
    for sql in statements:
        db.execute(sql)


@migrations(name="m002_deliveries")
def _m002_deliveries(db: Database) -> None:
    """The delivery ledger (see :mod:`engine.delivery.ledger`): replaces SEDM's marker files."""
    statements = [
        """CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL UNIQUE,
            night TEXT NOT NULL,
            obs_id TEXT,
            extraction_id INTEGER,
            destination TEXT NOT NULL,
            target TEXT,
            state TEXT NOT NULL DEFAULT 'pending',
            payload_json TEXT,
            depends_on INTEGER REFERENCES deliveries(id),
            remote_id TEXT,
            remote_url TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt REAL NOT NULL DEFAULT 0,
            last_error TEXT,
            dry_run INTEGER NOT NULL DEFAULT 0,
            created TEXT,
            updated TEXT,
            sent_at TEXT
        )""",
        "CREATE INDEX deliveries_state ON deliveries(state, next_attempt)",
        "CREATE INDEX deliveries_night ON deliveries(night, obs_id)",
    ]
    for sql in statements:
        db.execute(sql)


@migrations(name="m003_reprocess")
def _m003_reprocess(db: Database) -> None:
    """The reprocessing ledger (see :mod:`engine.reprocess.ledger`): what a batch did, with which inputs."""
    statements = [
        """CREATE TABLE reprocess (
            key TEXT PRIMARY KEY,
            night TEXT NOT NULL,
            kind TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            worker TEXT,
            wall_s REAL,
            peak_rss_mb REAL,
            run_id TEXT,
            updated TEXT
        )""",
        "CREATE INDEX reprocess_night ON reprocess(night, kind)",
    ]
    for sql in statements:
        db.execute(sql)


SCHEMA_MIGRATIONS: tuple[str, ...] = tuple(m.name for m in migrations._migrations)
"""Names of the migrations this program knows, oldest first (also in :mod:`engine.state.versions`,
which readers import; a test checks they agree)."""

SCHEMA_VERSION: int = len(SCHEMA_MIGRATIONS)
"""Schema version understood by this program (the number of migrations)."""
