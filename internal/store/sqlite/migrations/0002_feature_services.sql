-- Feature services: named, versioned sets of feature references.

CREATE TABLE feature_services (
    name           TEXT    PRIMARY KEY,
    features       TEXT    NOT NULL, -- JSON array of "group:feature", in order
    description    TEXT    NOT NULL DEFAULT '',
    tags           TEXT    NOT NULL DEFAULT '{}', -- JSON object
    schema_version INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

-- The groups each service references. RESTRICT makes deleting a referenced
-- group fail; DeleteGroup also checks first, in the same write transaction,
-- to name the services.
CREATE TABLE feature_service_groups (
    service_name TEXT NOT NULL REFERENCES feature_services (name) ON DELETE CASCADE,
    group_name   TEXT NOT NULL REFERENCES feature_groups (name) ON DELETE RESTRICT,
    PRIMARY KEY (service_name, group_name)
) STRICT;

CREATE INDEX feature_service_groups_group_idx ON feature_service_groups (group_name, service_name);
