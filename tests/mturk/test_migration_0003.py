"""Migration 0003_mturk: the exclusion qualification table matches the model, and the
migration goes down and up again without touching anything else."""
from __future__ import annotations

import pytest
from sqlalchemy import inspect


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_0003_matches_the_model_and_round_trips(backend, request, tmp_path):
    import flask_migrate
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from server import create_app
    from server.models import db

    url = request.getfixturevalue("postgres_url") if backend == "postgres" else \
        f"sqlite:///{tmp_path / 'db.sqlite3'}"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True},
                     instance_path=tmp_path / "instance")
    with app.app_context():
        flask_migrate.upgrade()
        with db.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), db.metadata)
        mine = [d for d in diffs if "mturk_qualifications" in repr(d)]
        assert mine == []
        flask_migrate.downgrade(revision="0002_recruitment")
        assert "mturk_qualifications" not in inspect(db.engine).get_table_names()
        assert "participants" in inspect(db.engine).get_table_names()
        flask_migrate.upgrade()
        cols = {c["name"] for c in inspect(db.engine).get_columns("mturk_qualifications")}
        assert cols == {"id", "experiment_id", "environment", "qualification_type_id",
                        "created"}
