-- The longitudinal health archive. Applied by `schoolhealth migrate` as the owner role.
-- Measurement tables are append-only: a correction is a new row whose `supersedes` names the
-- row it replaces, and the *_current views hide superseded rows. Every write is idempotent on
-- event_id (the unique key includes the time column, as TimescaleDB requires for hypertables).

CREATE SCHEMA IF NOT EXISTS archive;
CREATE SCHEMA IF NOT EXISTS roster;
CREATE SCHEMA IF NOT EXISTS ops;

CREATE TABLE archive.schools (
    school_id       text PRIMARY KEY,
    name            text NOT NULL,
    county_id       text NOT NULL,
    county_name     text NOT NULL,
    urban_rural     text NOT NULL CHECK (urban_rural IN ('urban', 'rural')),
    stage           text NOT NULL CHECK (stage IN ('primary', 'junior', 'nine_year')),
    boarding        boolean NOT NULL,
    enrollment      integer NOT NULL CHECK (enrollment >= 0),
    school_doctors  integer NOT NULL CHECK (school_doctors >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schools_county ON archive.schools (county_id);

-- The only place names and national student numbers live. Never sent to Kafka.
CREATE TABLE roster.students (
    student_key      text PRIMARY KEY CHECK (student_key ~ '^[0-9a-f]{64}$'),
    school_id        text NOT NULL,
    national_number  text NOT NULL,
    name             text NOT NULL,
    sex              text NOT NULL CHECK (sex IN ('male', 'female')),
    birth_date       date NOT NULL,
    grade            smallint NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX roster_school ON roster.students (school_id);

-- Current status of each student, from the newest health-record event (by occurred_at).
CREATE TABLE archive.students (
    student_key   text PRIMARY KEY CHECK (student_key ~ '^[0-9a-f]{64}$'),
    school_id     text NOT NULL,
    county_id     text NOT NULL,
    sex           text NOT NULL CHECK (sex IN ('male', 'female')),
    birth_date    date NOT NULL,
    grade         smallint NOT NULL CHECK (grade BETWEEN 1 AND 9),
    boarding      boolean NOT NULL,
    left_behind   boolean NOT NULL,
    disability    boolean NOT NULL,
    status        text NOT NULL CHECK (status IN ('active', 'left')),
    as_of         timestamptz NOT NULL,
    last_event_id uuid NOT NULL
);
CREATE INDEX students_school ON archive.students (school_id);

-- Every health-record event (registration, updates, transfers, leaving): the school history.
CREATE TABLE archive.student_history (
    event_id      uuid PRIMARY KEY,
    student_key   text NOT NULL,
    school_id     text NOT NULL,
    action        text NOT NULL CHECK (action IN ('register', 'update', 'transfer', 'leave')),
    effective_on  date NOT NULL,
    occurred_at   timestamptz NOT NULL,
    county_id     text NOT NULL,
    grade         smallint NOT NULL,
    to_school_id  text,
    boarding      boolean NOT NULL,
    left_behind   boolean NOT NULL,
    disability    boolean NOT NULL,
    submitted_by  text NOT NULL,
    supersedes    uuid,
    ingested_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX student_history_student ON archive.student_history (student_key, occurred_at);

CREATE TABLE archive.vision_screenings (
    event_id            uuid NOT NULL,
    measured_on         date NOT NULL,
    occurred_at         timestamptz NOT NULL,
    student_key         text NOT NULL,
    school_id           text NOT NULL,
    sex                 text NOT NULL,
    age_months          real NOT NULL,
    ucva_right          numeric(2, 1) NOT NULL,
    ucva_left           numeric(2, 1) NOT NULL,
    se_right            numeric(5, 2),
    se_left             numeric(5, 2),
    wears_glasses       boolean NOT NULL,
    screener            text NOT NULL,
    submitted_by        text NOT NULL,
    impairment_right    text NOT NULL,
    impairment_left     text NOT NULL,
    impairment_student  text NOT NULL,
    screening_myopia    boolean,
    myopia_grade        text,
    reasons             text[] NOT NULL DEFAULT '{}',
    rule_version        text NOT NULL,
    reference           text NOT NULL,
    supersedes          uuid,
    ingested_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, measured_on)
);
CREATE INDEX vision_student ON archive.vision_screenings (student_key, measured_on);
CREATE INDEX vision_school ON archive.vision_screenings (school_id, measured_on);

CREATE TABLE archive.growth_screenings (
    event_id                uuid NOT NULL,
    measured_on             date NOT NULL,
    occurred_at             timestamptz NOT NULL,
    student_key             text NOT NULL,
    school_id               text NOT NULL,
    sex                     text NOT NULL,
    age_months              real NOT NULL,
    height_cm               numeric(5, 1) NOT NULL,
    weight_kg               numeric(5, 1) NOT NULL,
    screener                text NOT NULL,
    submitted_by            text NOT NULL,
    bmi                     real NOT NULL,
    bmi_for_age_z           real,
    height_for_age_z        real,
    who_category            text NOT NULL,
    wst586                  text NOT NULL,
    wst456_wasting          text NOT NULL,
    wst456_stunting         text NOT NULL,
    flags                   text[] NOT NULL DEFAULT '{}',
    not_applicable_reasons  text[] NOT NULL DEFAULT '{}',
    rule_version            text NOT NULL,
    reference               text NOT NULL,
    supersedes              uuid,
    ingested_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, measured_on)
);
CREATE INDEX growth_student ON archive.growth_screenings (student_key, measured_on);
CREATE INDEX growth_school ON archive.growth_screenings (school_id, measured_on);

-- Scores and bands; item answers are kept only for instruments whose rules read items (PHQ).
CREATE TABLE archive.survey_results (
    event_id            uuid NOT NULL,
    answered_on         date NOT NULL,
    occurred_at         timestamptz NOT NULL,
    student_key         text NOT NULL,
    school_id           text NOT NULL,
    sex                 text NOT NULL,
    age_months          real NOT NULL,
    instrument          text NOT NULL,
    instrument_version  text NOT NULL,
    total               smallint NOT NULL,
    max_total           smallint NOT NULL,
    band                text,
    positive_screen     boolean,
    literate            boolean,
    dimension_scores    jsonb,
    safety_flags        text[] NOT NULL DEFAULT '{}',
    item_answers        smallint[],
    submitted_by        text NOT NULL,
    rule_version        text NOT NULL,
    reference           text NOT NULL,
    supersedes          uuid,
    ingested_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, answered_on)
);
CREATE INDEX survey_student ON archive.survey_results (student_key, answered_on);
CREATE INDEX survey_school ON archive.survey_results (school_id, instrument, answered_on);

-- Events the pipeline rejected, with the original bytes and where they came from.
-- item_index is the position inside a batch envelope, or -1 for the whole message.
CREATE TABLE ops.dead_letters (
    id            bigserial PRIMARY KEY,
    topic         text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset  bigint NOT NULL,
    item_index    integer NOT NULL DEFAULT -1,
    code          text NOT NULL,
    reason        text NOT NULL,
    school_id     text,
    screener      text,
    -- The original bytes, cut at 1 MiB (an oversize message is itself a reason to reject);
    -- payload_size and payload_sha256 describe the whole original.
    payload       bytea NOT NULL,
    payload_size  integer NOT NULL,
    payload_sha256 text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, kafka_partition, kafka_offset, item_index)
);
CREATE INDEX dead_letters_school ON ops.dead_letters (school_id, received_at);

-- Rows a bulk import rejected before anything reached Kafka (the per-row report, summarised).
CREATE TABLE ops.import_rejections (
    id           bigserial PRIMARY KEY,
    import_id    uuid NOT NULL,
    kind         text NOT NULL,
    row_number   integer NOT NULL,
    school_id    text,
    screener     text,
    field        text,
    reason       text NOT NULL,
    rejected_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (import_id, row_number)
);

CREATE VIEW archive.vision_current AS
    SELECT v.* FROM archive.vision_screenings v
    WHERE NOT EXISTS (SELECT 1 FROM archive.vision_screenings c WHERE c.supersedes = v.event_id);
CREATE VIEW archive.growth_current AS
    SELECT g.* FROM archive.growth_screenings g
    WHERE NOT EXISTS (SELECT 1 FROM archive.growth_screenings c WHERE c.supersedes = g.event_id);
CREATE VIEW archive.survey_current AS
    SELECT s.* FROM archive.survey_results s
    WHERE NOT EXISTS (SELECT 1 FROM archive.survey_results c WHERE c.supersedes = s.event_id);
CREATE INDEX vision_supersedes ON archive.vision_screenings (supersedes) WHERE supersedes IS NOT NULL;
CREATE INDEX growth_supersedes ON archive.growth_screenings (supersedes) WHERE supersedes IS NOT NULL;
CREATE INDEX survey_supersedes ON archive.survey_results (supersedes) WHERE supersedes IS NOT NULL;

-- TimescaleDB (hypertables, columnstore, continuous aggregates) is applied by 0025 and by
-- `archive.apply_timescaledb()`, which `schoolhealth migrate` runs after every migration, so a
-- database whose cluster gains the extension later is converted too. Until then, and on plain
-- PostgreSQL, these are ordinary tables with the indexes above.
