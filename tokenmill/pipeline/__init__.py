"""The pipeline: plan a job from its spec, run it on Ray shard by shard, resume, account, report."""
