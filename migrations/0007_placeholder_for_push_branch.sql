-- Placeholder so that the wip-push branch's 0010 runs before the branches
-- that own 0007 are merged. The lead drops this file at merge (the real
-- 0007 takes its place).
SELECT 1;
