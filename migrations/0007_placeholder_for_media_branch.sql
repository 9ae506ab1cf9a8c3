-- Placeholder so that the wip-media branch's 0009 runs before the branches
-- that own 0007 are merged. The lead drops this file at merge (the real
-- 0007 takes its place).
SELECT 1;
