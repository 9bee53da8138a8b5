-- Feature services: named, versioned sets of feature references.

CREATE TABLE feature_services (
    name           text COLLATE "C" PRIMARY KEY,
    features       jsonb       NOT NULL, -- JSON array of "group:feature", in order
    description    text        NOT NULL DEFAULT '',
    tags           jsonb       NOT NULL DEFAULT '{}',
    schema_version integer     NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- The groups each service references. RESTRICT makes deleting a referenced
-- group fail in the DELETE statement itself: inserting a reference locks the
-- group row (FOR KEY SHARE) and deleting it locks it exclusively, so a group
-- cannot vanish under a service that a concurrent transaction is creating.
CREATE TABLE feature_service_groups (
    service_name text COLLATE "C" NOT NULL REFERENCES feature_services (name) ON DELETE CASCADE,
    group_name   text COLLATE "C" NOT NULL REFERENCES feature_groups (name) ON DELETE RESTRICT,
    PRIMARY KEY (service_name, group_name)
);

CREATE INDEX feature_service_groups_group_idx ON feature_service_groups (group_name, service_name);
