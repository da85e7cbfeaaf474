"""Model rollout: stage a version, render the RayService or a KServe canary, plan the change."""
