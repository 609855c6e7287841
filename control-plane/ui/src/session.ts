// Who the token belongs to. The API has no "who am I" operation, so the account and
// role are found from what any token may read: its account's tokens (each with the
// first 8 characters of the token, `prefix`) and then that account.

import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { ApiError, listAll, request, type Account, type Token, type Usage } from "./api";

export interface Identity {
  token: string;
  account: Pick<Account, "id" | "name" | "is_operator" | "blocked" | "blocked_reason">;
  /** admin, editor or viewer; null when it could not be told */
  role: string | null;
  canWrite: boolean;
}

const WRITE_ROLES = new Set(["admin", "editor"]);
const PREFIX_LENGTH = 8;

export async function resolveIdentity(token: string): Promise<Identity> {
  let accountId: string | null = null;
  let role: string | null = null;
  try {
    const { items } = await listAll<Token>("/v1/tokens", {}, { token, maxPages: 10 });
    const mine = items.filter((t) => !t.revoked_at && t.prefix === token.slice(0, PREFIX_LENGTH));
    if (mine.length > 0) {
      accountId = mine[0].account_id;
      // two live tokens sharing a prefix: assume the least privileged
      role = mine.some((t) => t.role === "viewer") ? "viewer"
        : mine.some((t) => t.role === "editor") ? "editor" : mine[0].role;
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error;
  }
  if (!accountId) {
    // every token may read its usage, which names its account
    const usage = await request<Usage>("GET", "/v1/usage", { token });
    accountId = usage.account_id;
  }
  const account = await request<Account>("GET", `/v1/accounts/${accountId}`, { token });
  return {
    token,
    account: {
      id: account.id,
      name: account.name,
      is_operator: account.is_operator,
      blocked: account.blocked,
      blocked_reason: account.blocked_reason,
    },
    role,
    // a role we could not tell: show the controls and let the API answer 403
    canWrite: role === null || WRITE_ROLES.has(role),
  };
}

export const IdentityContext = createContext<Identity | null>(null);

export function useIdentity(): Identity {
  const identity = useContext(IdentityContext);
  if (!identity) throw new Error("no identity");
  return identity;
}
