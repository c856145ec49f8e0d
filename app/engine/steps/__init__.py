"""The steps of a sync run, each `step(ctx)` over the one work list (app.engine.run)."""
