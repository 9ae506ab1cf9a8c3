-- Placeholder so that the wip-e2ee branch's 0008 runs before the branch
-- that owns 0007 is merged. The lead drops this file at merge (the real
-- 0007 takes its place).
SELECT 1;
