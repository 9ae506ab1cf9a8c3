-- Placeholder so that the wip-media branch's 0009 runs before the branches
-- that own 0008 are merged. The lead drops this file at merge (the real
-- 0008 takes its place).
SELECT 1;
